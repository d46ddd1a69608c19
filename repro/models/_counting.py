"""Parameter counting that matches how SR papers count: shared weights once, optionally weights only.

PyTorch's `parameters()` already yields a Parameter shared by several modules once; `count_params`
relies on that identity (not on module names), so a recursion that reuses one conv counts it once.
`weights_only=True` keeps only convolution / transposed-convolution / linear weight tensors, which is
how DRCN (1774k), DRRN (297k) and MemNet (677k) were published: biases, batch-norm affine parameters,
PReLU slopes and ensemble weights come on top.
"""

from __future__ import annotations

import torch
from torch import nn

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def count_params(model: nn.Module, weights_only: bool = False) -> int:
    """Number of distinct parameters of `model` (each shared Parameter once).

    `weights_only`: only the `.weight` of conv, transposed-conv and linear layers.
    """
    if not weights_only:
        return sum(p.numel() for p in model.parameters())
    seen: dict[int, int] = {}
    for module in model.modules():
        if isinstance(module, _WEIGHTED) and module.weight is not None:
            seen[id(module.weight)] = module.weight.numel()
    return sum(seen.values())


def count_applications(
    model: nn.Module, inputs: object, types: tuple[type, ...] = _WEIGHTED
) -> dict[str, int]:
    """How often each layer of `types` runs in one forward of `model` on `inputs` (name -> calls).

    A module reached under several names (shared) is reported under its first name with all its calls.
    """
    counts: dict[str, int] = {}
    hooks = []
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, types) and id(module) not in names:
            names[id(module)] = name
            counts[name] = 0

            def hook(mod: nn.Module, _inp: object, _out: object, key: str = name) -> None:
                counts[key] += 1

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    finally:
        for h in hooks:
            h.remove()
    return counts
