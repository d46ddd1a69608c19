"""Stacked members and their Adam: each member's slice is its solo tensors, and `StackedAdam`'s update is
`torch.optim.Adam`'s, member by member, with each member's learning rate."""

from __future__ import annotations

import copy

import pytest
import torch

from repro.models import create
from repro.train.stacked import StackedAdam, clip_per_member, load_member, member_state, stack


def _pair(members: int = 3):
    torch.manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(members, 5, 4))
    alone = [torch.nn.Parameter(stacked[k].detach().clone()) for k in range(members)]
    return stacked, alone


def test_host_form_is_torch_adam_bit_for_bit_with_each_members_learning_rate():
    stacked, alone = _pair()
    lrs = [1e-3, 3e-3, 5e-4]
    fleet = StackedAdam([stacked], 3, betas=(0.9, 0.99), eps=1e-7, weight_decay=1e-4)
    solos = [torch.optim.Adam([p], lr=lr, betas=(0.9, 0.99), eps=1e-7, weight_decay=1e-4)
             for p, lr in zip(alone, lrs, strict=True)]
    for _ in range(12):
        grad = torch.randn(3, 5, 4)
        stacked.grad = grad.clone()
        fleet.set_lr(lrs)
        fleet.step()
        for k, (p, opt) in enumerate(zip(alone, solos, strict=True)):
            p.grad = grad[k].clone()
            opt.step()
    assert all(torch.equal(stacked[k], alone[k]) for k in range(3))
    # a member's state is a solo Adam's state_dict, and goes back in
    state = fleet.member_optimizer(1, [alone[1]], lrs[1])
    reference = solos[1].state_dict()
    assert float(state["state"][0]["step"]) == 12.0
    assert torch.equal(state["state"][0]["exp_avg"], reference["state"][0]["exp_avg"])
    other = StackedAdam([torch.nn.Parameter(torch.zeros(3, 5, 4))], 3, betas=(0.9, 0.99), eps=1e-7)
    assert other.load_member_optimizer(2, reference) == 12
    assert torch.equal(other.exp_avg_sq[0][2], reference["state"][0]["exp_avg_sq"])


def test_capturable_form_keeps_its_counts_on_the_device_and_agrees():
    stacked, alone = _pair(2)
    twin = torch.nn.Parameter(stacked.detach().clone())
    host, device = StackedAdam([stacked], 2), StackedAdam([twin], 2, capturable=True)
    for _ in range(20):
        grad = torch.randn(2, 5, 4)
        for opt, p in ((host, stacked), (device, twin)):
            p.grad = grad.clone()
            opt.set_lr([1e-3, 2e-3])
            opt.step()
    assert device.step_t.item() == 20 and device.lr.tolist() == pytest.approx([1e-3, 2e-3])
    assert (stacked - twin).abs().max().item() < 1e-6  # the bias corrections in float32 on the device


def test_stacked_modules_slice_back_to_each_member_and_clip_alone():
    nets = [create("fsrcnn", scale=4) for _ in range(3)]
    params, buffers = stack(nets)
    assert not buffers and all(v.shape[0] == 3 for v in params.values())
    assert all(torch.equal(member_state(params, 1)[k], v) for k, v in nets[1].named_parameters())
    replaced = copy.deepcopy(nets[2])
    load_member(params, 0, dict(replaced.named_parameters()))
    assert torch.equal(params["deconv.weight"][0], replaced.deconv.weight)
    grads = [torch.ones(3, 4), torch.ones(3, 2)]
    grads[0][0] *= 10  # member 0's norm (20.05) is over the limit, the others' (2.45) under it
    clip_per_member(grads, max_norm=5.0)
    norm0 = torch.cat([g[0].flatten() for g in grads]).norm()
    assert norm0 == pytest.approx(5.0, rel=1e-5) and torch.equal(grads[1][1], torch.ones(2))
