"""Appendix Table I: FSRCNN*, PISR and DSSD students beside Bicubic and published efficient SR networks,
x2/x3/x4, PSNR/SSIM on Set5, Set14, B100 and Urban100, with params, MultiAdds and runtime.

The printed numbers of DRCN, DRRN, MemNet, CARN, IDN, SRFBN, IMDN and the original FSRCNN come from
their own papers (other training data and protocols); here they are trainable rows under this suite's
protocol, so the report can say that the printed comparison crosses protocols. The original FSRCNN
under this protocol is the FSRCNN* run.
"""

from repro.scales import SCALES
from repro.specs.base import Claim, Row, TableSpec, baseline, equal_compute_row, student
from repro.specs.table4 import dssd_teacher, pisr_teacher

OTHER_PAPERS = {  # row name as printed -> (network, where its printed numbers come from)
    "DRCN": ("drcn", "Kim et al., CVPR 2016 (DRCN)"),
    "DRRN": ("drrn", "Tai et al., CVPR 2017 (DRRN)"),
    "MemNet": ("memnet", "Tai et al., ICCV 2017 (MemNet)"),
    "CARN": ("carn", "Ahn et al., ECCV 2018 (CARN)"),
    "IDN": ("idn", "Hui et al., CVPR 2018 (IDN)"),
    "SRFBN": ("srfbn", "Li et al., CVPR 2019 (SRFBN)"),
    "IMDN": ("imdn", "Hui et al., ACM MM 2019 (IMDN)"),
}


def _students(make) -> tuple:
    return tuple(student(make("fsrcnn", s)) for s in SCALES)


TABLE = TableSpec(
    name="appendix1",
    short="Appendix Table I",
    order=5,
    title="Appendix Table I: comparison with efficient SR networks, PSNR (dB) / SSIM",
    rows=(
        Row("Bicubic", "Bicubic"),
        Row("FSRCNN", "FSRCNN", tuple(baseline("fsrcnn", s) for s in SCALES),
            source="Dong et al., ECCV 2016 (FSRCNN, trained on T91 + General100)"),
        *(Row(name, name, tuple(baseline(model, s) for s in SCALES), source=source)
          for name, (model, source) in OTHER_PAPERS.items()),
        Row("FSRCNN*", "FSRCNN*", tuple(baseline("fsrcnn", s) for s in SCALES), roles=("fsrcnn_alone",)),
        Row("PISR", "PISR", _students(pisr_teacher), roles=("pisr_student",)),
        Row("DSSD", "DSSD", _students(dssd_teacher), roles=("dssd_student",)),
        equal_compute_row("equal_compute_fsrcnn", _students(dssd_teacher), control_for=("PISR", "DSSD")),
    ),
    scales=SCALES,
    datasets=("Set5", "Set14", "B100", "Urban100"),
    metrics=("psnr", "ssim"),
    claims=tuple(Claim("DSSD", "PISR", scale=s, dataset=d) for s in SCALES
                 for d in ("Set5", "Set14", "B100", "Urban100")),
    complexity=True,
)
