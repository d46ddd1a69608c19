"""Parameter counting that matches how SR papers count: shared weights once, optionally weights only.

PyTorch's `parameters()` already yields a Parameter shared by several modules once; `count_params`
relies on that identity (not on module names), so a recursion that reuses one conv counts it once.
`weights_only=True` keeps only convolution / transposed-convolution / linear weight tensors, which is
how DRCN (1774k), DRRN (297k) and MemNet (677k) were published: biases, batch-norm affine parameters,
PReLU slopes and ensemble weights come on top.

`run_with_hooks` is the one place that hooks layers, runs a forward and removes the hooks: the MultiAdds
counters of `repro.complexity.macs` are built on it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

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


def run_with_hooks(
    model: nn.Module,
    inputs: object,
    hook: Callable[[str, nn.Module, tuple[Any, ...], Any], None],
    types: tuple[type, ...] = _WEIGHTED,
    *,
    inference: bool = True,
) -> Any:
    """Run `model` once on `inputs` with `hook` on every module of `types`; the hooks are always removed.

    `hook(name, module, inputs, output)` is a forward hook that also receives the module's name (its
    first name: a module reached under several names is hooked once). A tuple `inputs` is unpacked into
    the call. `inference=True` runs under `torch.inference_mode`, `False` under `torch.no_grad` (for a
    model whose forward caches tensors that must stay usable by autograd later). Returns the output.
    """
    handles = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, types):
                handles.append(module.register_forward_hook(partial(hook, name)))
        with torch.inference_mode() if inference else torch.no_grad():
            return model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    finally:
        for handle in handles:
            handle.remove()

