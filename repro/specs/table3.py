"""Table 3: deep supervision of the full DSSD teacher (HFRM + SDM), x4, Set5 PSNR of the distilled FSRCNN.

`recon_only`: L_recon alone; `first_level`: the 1/2-scale terms z'_Fre, z'_Deg added; `deep_supervision`:
every term (Eq. 13). The paper claims +0.06 and +0.08 dB over `recon_only`.
"""

from repro.specs.base import Claim, Row, TableSpec, equal_compute_row, student, teacher
from repro.specs.table1 import FSRCNN_STAR
from repro.specs.table2 import DSSD

RECON_ONLY = teacher("dssd_teacher", 4, "model.downsampler=hfrm", "model.degradation=sdm", "loss.levels=none")
FIRST_LEVEL = teacher("dssd_teacher", 4, "model.downsampler=hfrm", "model.degradation=sdm",
                      "loss.levels=first_level")

TABLE = TableSpec(
    name="table3",
    short="Table 3",
    order=3,
    title="Table 3: deep supervision of the DSSD teacher, x4, Set5 PSNR (dB)",
    rows=(
        Row("recon_only", "Reconstruction loss only", (student(RECON_ONLY),)),
        Row("first_level", "First level supervised", (student(FIRST_LEVEL),)),
        Row("deep_supervision", "Deep supervision (both levels)", (student(DSSD),), roles=("dssd_student",)),
        Row("baseline_fsrcnn", "FSRCNN* (no distillation; not printed in Table 3)", (FSRCNN_STAR,),
            roles=("fsrcnn_alone",)),
        equal_compute_row("equal_compute_fsrcnn", (student(DSSD),),
                          control_for=("recon_only", "first_level", "deep_supervision")),
    ),
    claims=(Claim("first_level", "recon_only"), Claim("deep_supervision", "recon_only")),
)
