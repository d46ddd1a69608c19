"""The quickstart: the pipeline in miniature on the embedded `sample` photos, x4, measured beside bicubic.

Not a table of the paper (nothing is printed to compare with): it shows every step working offline in
minutes. The teacher's HFRM and SDM work at HR size (about ten times an FSRCNN step), so it trains a
third of the iterations (`optim.epochs=4` against the profile's 12).
"""

from repro.specs.base import Row, TableSpec, baseline, student, teacher

DSSD_TEACHER = teacher("dssd_teacher", 4, "optim.epochs=4")

TABLE = TableSpec(
    name="quickstart",
    short="Quickstart",
    order=0,
    title="Quickstart: x4 on the sample test photos",
    rows=(
        Row("bicubic", "Bicubic"),
        Row("fsrcnn_baseline", "FSRCNN* (trained alone)", (baseline("fsrcnn", 4),), roles=("fsrcnn_alone",)),
        Row("dssd_teacher", "DSSD teacher (privileged: sees HR)", (DSSD_TEACHER,)),
        Row("fsrcnn_dssd", "FSRCNN distilled from the DSSD teacher", (student(DSSD_TEACHER),),
            roles=("dssd_student",)),
    ),
    datasets=("sample",),
    metrics=("psnr", "ssim"),
    profile="quickstart",
    of_paper=False,
)
