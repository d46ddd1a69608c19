"""Table 2: how the teacher re-degrades its SR output (HFRM kept), x4, Set5 PSNR of the distilled FSRCNN.

`none` is Table 1's HFRM row (the same run); `sdm` is the full DSSD teacher (Table 3's last row).
"""

from repro.specs.base import Claim, Row, TableSpec, equal_compute_row, student, teacher
from repro.specs.table1 import FSRCNN_STAR, HFRM

SDM_BICUBIC = teacher("dssd_teacher", 4, "model.downsampler=hfrm", "model.degradation=bicubic")
SDM_CNN = teacher("dssd_teacher", 4, "model.downsampler=hfrm", "model.degradation=cnn")
DSSD = teacher("dssd_teacher", 4, "model.downsampler=hfrm", "model.degradation=sdm")

TABLE = TableSpec(
    name="table2",
    short="Table 2",
    order=2,
    title="Table 2: SDM against other degradations of the teacher's SR (HFRM kept), x4, Set5 PSNR (dB)",
    rows=(
        Row("sdm_none", "No degradation", (student(HFRM),)),
        Row("sdm_bicubic_down", "Bicubic degradation", (student(SDM_BICUBIC),)),
        Row("sdm_cnn_down", "CNN degradation", (student(SDM_CNN),)),
        Row("sdm", "SDM", (student(DSSD),)),
        Row("baseline_fsrcnn", "FSRCNN* (no distillation; not printed in Table 2)", (FSRCNN_STAR,),
            roles=("fsrcnn_alone",)),
        equal_compute_row("equal_compute_fsrcnn", (student(DSSD),),
                          control_for=("sdm_none", "sdm_bicubic_down", "sdm_cnn_down", "sdm")),
    ),
    claims=(Claim("sdm", "sdm_none"), Claim("sdm", "sdm_bicubic_down"), Claim("sdm", "sdm_cnn_down")),
)
