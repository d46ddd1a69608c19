"""Parameters of the deployed network: no VID branches, no teacher parts, shared weights once.

Counting itself is `repro.models.counting.count_params` (a Parameter reached through several modules
counts once, as a recursion's shared conv should). This module decides WHAT is counted: a teacher entry
counts only its backbone (what the student copies and deploys), and the row reports both the full count
and the weights-only count (conv/deconv/linear weights), because DRCN, DRRN and MemNet were published
with weights only (biases and batch norms on top).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from repro.models.counting import count_params


def deployed(model: nn.Module) -> nn.Module:
    """The network that runs at test time: a teacher's `backbone`, else the model itself."""
    backbone = getattr(model, "backbone", None)
    return backbone if isinstance(backbone, nn.Module) else model


@dataclass(frozen=True)
class ParamCount:
    total: int  # every distinct parameter (biases, PReLU slopes, batch norms, ensemble weights)
    weights: int  # conv / transposed-conv / linear weights only


def params(model: nn.Module) -> ParamCount:
    net = deployed(model)
    return ParamCount(count_params(net), count_params(net, weights_only=True))
