"""HostFiniteGuard reads a plain 0-d loss with tolist(), other losses with item(): the value
the metrics record and the finiteness it checks are item()'s either way."""

from __future__ import annotations

import math

import pytest
import torch

from model_training_framework.trainer.optim.nonfinite import HostFiniteGuard

VALUES = [0.1234567, -0.0, 1e-30, 65504.0, 3.0, float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("value", VALUES)
def test_a_0d_loss_is_read_as_item_reads_it(dtype, value):
    loss = torch.tensor(value, dtype=dtype, requires_grad=True) * 1
    guard = HostFiniteGuard("raise")
    got, want = guard.keep_loss(loss), loss.item()
    assert type(got) is type(want)
    assert (math.isnan(got) and math.isnan(want)) or (
        got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
    )
    guard.close_window(1, [], None)
    assert (guard.first_bad_step() is None) == math.isfinite(want)


def test_a_one_element_loss_of_rank_one_and_a_parameter_are_read_with_item():
    guard = HostFiniteGuard("raise")
    assert guard.keep_loss(torch.tensor([0.5], requires_grad=True) * 2) == 1.0
    assert guard.keep_loss(torch.nn.Parameter(torch.tensor(2.5))) == 2.5
