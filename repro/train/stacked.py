"""N networks of one architecture as one: parameters stacked along a new first dimension, and Adam over
them with each member's own learning rate.

`torch.func.stack_module_state` stacks the members' parameters and buffers ([N, ...] each);
`torch.func.functional_call` under `torch.func.vmap` then runs one module's forward with every member's
weights at once (convolutions become grouped convolutions, PReLU one broadcast): about the operations of
one member's step whatever N. Each member's slice is exactly the tensor it would be alone, so a member's
state is read back (`member_state`) or written in (`load_member`) in the layout of a solo run.

`StackedAdam` is `torch.optim.Adam`'s update (the single-tensor algorithm: lerp for the first moment,
mul/addcmul for the second, bias corrections, addcdiv) on [N, ...] tensors with a learning rate per
member. Host form: bias corrections as Python floats and the step size folded into the numerator, which
rounds as Adam's `addcdiv_(exp_avg, denom, value=-step_size)` does. Capturable form (a CUDA graph): the
step count, bias corrections and learning rates as device tensors, as Adam's `capturable=True` computes
them. Its state converts to and from a solo run's `torch.optim.Adam.state_dict()` (`member_optimizer`,
`load_member_optimizer`), so a member's checkpoint is a solo run's checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def stack(modules: Sequence[nn.Module]) -> tuple[dict[str, nn.Parameter], dict[str, torch.Tensor]]:
    """({name: [N, ...] leaf parameter}, {name: [N, ...] buffer}) of modules of one architecture; only
    parameters that require a gradient are stacked as parameters (the others as buffers)."""
    params, buffers = torch.func.stack_module_state(list(modules))
    trainable = {k: nn.Parameter(v.detach()) for k, v in params.items()
                 if modules[0].get_parameter(k).requires_grad}
    frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
    return trainable, {**buffers, **frozen}


def member_state(stacked: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member k's slice of every stacked tensor, as its own (cloned) tensors."""
    return {name: t[k].detach().clone() for name, t in stacked.items()}


@torch.no_grad()
def load_member(stacked: dict[str, torch.Tensor], k: int, state: dict[str, torch.Tensor]) -> None:
    """Write a member's tensors (a solo module's `named_parameters`/buffers) into slice k."""
    for name, t in stacked.items():
        t[k].copy_(state[name])


def clip_per_member(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_` for each member alone: its gradients' total 2-norm over every
    parameter, scaled down to `max_norm` where larger (no host read)."""
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # [N]
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


class StackedAdam:
    """Adam over stacked parameters, member k with learning rate `lr[k]` (set by `set_lr`)."""

    def __init__(self, params: Sequence[nn.Parameter], members: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 capturable: bool = False) -> None:
        self.params, self.members = list(params), members
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay, self.capturable = eps, weight_decay, capturable
        device = self.params[0].device
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = 0  # host form
        self.step_t = torch.zeros((), dtype=torch.float32, device=device)  # capturable form
        self.lr_host = [0.0] * members
        self.lr = torch.zeros(members, dtype=torch.float32, device=device)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's learning rate of this step. Capturable form: filled in place (a kernel with the
        value as its argument; a copy from host memory would wait for the device's queue), once when
        the members share it."""
        self.lr_host = [float(v) for v in lrs]
        if not self.capturable:
            return
        if len(set(self.lr_host)) == 1:
            self.lr.fill_(self.lr_host[0])
        else:
            for k, value in enumerate(self.lr_host):
                self.lr[k].fill_(value)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _shape(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.beta1, self.beta2
        if self.capturable:
            self.step_t += 1
            bc1, bc2 = 1 - b1 ** self.step_t, 1 - b2 ** self.step_t
            neg_step = (self.lr / bc1).neg()  # [N]
            bc2_sqrt = bc2.sqrt()
        else:
            self.step_count += 1
            bc1, bc2 = 1 - b1 ** self.step_count, 1 - b2 ** self.step_count
            neg_step = torch.tensor([-(lr / bc1) for lr in self.lr_host], dtype=self.params[0].dtype,
                                    device=self.params[0].device)
            bc2_sqrt = bc2 ** 0.5
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            scale = self._shape(neg_step, p)
            if self.capturable:
                denom = (v.sqrt() / (bc2_sqrt * scale)).add_(self.eps / scale)
                p.addcdiv_(m, denom)
            else:
                denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                p.addcdiv_(m * scale, denom)

    # ------------------------------------------------------------ a member's state as a solo Adam's
    def member_optimizer(self, k: int, module_params: Sequence[nn.Parameter], lr: float) -> dict[str, Any]:
        """Member k's state as `torch.optim.Adam(module_params, lr, betas, eps, weight_decay)
        .state_dict()` after the same steps (what a solo run's checkpoint holds)."""
        adam = torch.optim.Adam(list(module_params), lr=lr, betas=(self.beta1, self.beta2), eps=self.eps,
                                weight_decay=self.weight_decay)
        steps = float(self.step_t) if self.capturable else float(self.step_count)
        for p, m, v in zip(module_params, self.exp_avg, self.exp_avg_sq, strict=True):
            adam.state[p] = {"step": torch.tensor(steps), "exp_avg": m[k].detach().cpu().clone(),
                             "exp_avg_sq": v[k].detach().cpu().clone()}
        return adam.state_dict()

    @torch.no_grad()
    def load_member_optimizer(self, k: int, state: dict[str, Any]) -> int:
        """Write a solo Adam's `state_dict()` into member k; returns its step count (every member of a
        fleet must be at the same one)."""
        steps = {int(float(s["step"])) for s in state["state"].values()}
        if len(steps) > 1:
            raise ValueError(f"an optimizer state with parameters at different steps: {sorted(steps)}")
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            m[k].copy_(state["state"][i]["exp_avg"])
            v[k].copy_(state["state"][i]["exp_avg_sq"])
        step = steps.pop() if steps else 0
        self.step_count = step
        self.step_t.fill_(float(step))
        return step
