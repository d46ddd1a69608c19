"""Table 4: the distillation with other backbones, x4, PSNR (dB) on Set5 and B100.

For each backbone: trained alone (`*`), distilled from a PISR teacher and from a DSSD teacher with that
backbone. VDSR and IDN distil their last feature map before reconstruction (docs/protocol.md).
"""

from repro.specs.base import Claim, Row, TableSpec, baseline, equal_compute_row, student, teacher

BACKBONES = {"fsrcnn": "FSRCNN", "vdsr": "VDSR", "idn": "IDN"}


def pisr_teacher(backbone: str, scale: int = 4):
    return teacher("pisr_teacher", scale, f"model.backbone={backbone}")


def dssd_teacher(backbone: str, scale: int = 4):
    return teacher("dssd_teacher", scale, f"model.backbone={backbone}")


def _rows(backbone: str, label: str) -> tuple[Row, ...]:
    def roles(role: str) -> tuple[str, ...]:  # the report's figures show the FSRCNN rows
        return (role,) if backbone == "fsrcnn" else ()

    dssd = student(dssd_teacher(backbone))
    return (
        Row(f"{backbone}_baseline", f"{label}*", (baseline(backbone, 4),), roles=roles("fsrcnn_alone")),
        Row(f"{backbone}_pisr", f"{label} (PISR)", (student(pisr_teacher(backbone)),),
            roles=roles("pisr_student")),
        Row(f"{backbone}_dssd", f"{label} (DSSD)", (dssd,), roles=roles("dssd_student")),
        equal_compute_row(f"{backbone}_equal_compute", (dssd,),
                          control_for=(f"{backbone}_pisr", f"{backbone}_dssd"), network=label),
    )


TABLE = TableSpec(
    name="table4",
    short="Table 4",
    order=4,
    title="Table 4: FSRCNN, VDSR and IDN trained alone, with the PISR teacher and with the DSSD teacher, "
          "x4, PSNR (dB)",
    rows=tuple(row for backbone, label in BACKBONES.items() for row in _rows(backbone, label)),
    datasets=("Set5", "B100"),
    claims=tuple(Claim(f"{b}_dssd", f"{b}_pisr", dataset=d) for b in BACKBONES for d in ("Set5", "B100")),
)
