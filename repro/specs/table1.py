"""Table 1: the teacher's downsampler, without SDM (x4, Set5 PSNR of the distilled FSRCNN).

The paper's text: bicubic downsampling is worst (the teacher then sees the student's own input),
PISR's encoder learns some high frequencies, the recursive HFRM most; FSRCNN alone is 30.89 dB.
"""

from repro.specs.base import Claim, Row, TableSpec, baseline, equal_compute_row, student, teacher

NO_SDM = "model.degradation=none"
BICUBIC = teacher("dssd_teacher", 4, "model.downsampler=bicubic", NO_SDM)
PISR_ENCODER = teacher("dssd_teacher", 4, "model.downsampler=pisr_encoder", NO_SDM)
HFRM = teacher("dssd_teacher", 4, "model.downsampler=hfrm", NO_SDM)
FSRCNN_STAR = baseline("fsrcnn", 4)

TABLE = TableSpec(
    name="table1",
    short="Table 1",
    order=1,
    title="Table 1: HFRM against other downsamplers of the teacher (no SDM), x4, Set5 PSNR (dB)",
    rows=(
        Row("teacher_bicubic_down", "Bicubic downsampling", (student(BICUBIC),)),
        Row("teacher_pisr_encoder", "PISR encoder", (student(PISR_ENCODER),)),
        Row("teacher_hfrm", "HFRM", (student(HFRM),)),
        Row("baseline_fsrcnn", "FSRCNN* (no distillation)", (FSRCNN_STAR,), roles=("fsrcnn_alone",)),
        equal_compute_row("equal_compute_fsrcnn", (student(HFRM),),
                          control_for=("teacher_bicubic_down", "teacher_pisr_encoder", "teacher_hfrm")),
    ),
    claims=(Claim("teacher_hfrm", "teacher_bicubic_down"), Claim("teacher_hfrm", "teacher_pisr_encoder"),
            Claim("teacher_hfrm", "baseline_fsrcnn")),
)
