"""Gradients are cleared after every optimizer step, whoever clears them (NOTE [clearing
gradients]): torch's own ``zero_grad`` is done directly, an overridden one is called."""

from __future__ import annotations

import torch

from model_training_framework.trainer.optim.nonfinite import HostFiniteGuard
from model_training_framework.trainer.optim.precision import Precision
from model_training_framework.trainer.optim.stepper import OptimizerStepper


def _stepper(model, optimizers):
    return OptimizerStepper(optimizers, [], Precision(), model, None, check_every_step=False)


def _backward(model):
    model(torch.ones(1, 4)).sum().backward()


class _CountingSGD(torch.optim.SGD):
    calls = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        type(self).calls += 1
        super().zero_grad(set_to_none=set_to_none)


def test_every_gradient_is_none_after_a_step_and_a_group_added_later_is_cleared_too():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    optimizer = torch.optim.SGD(model[0].parameters(), lr=0.1)
    stepper = _stepper(model, [optimizer])
    optimizer.add_param_group({"params": list(model[1].parameters())})
    _backward(model)
    stepper.step(0, 1, HostFiniteGuard("raise"))
    assert [p.grad for p in model.parameters()] == [None] * 4


def test_an_optimizer_with_its_own_zero_grad_gets_the_call():
    model = torch.nn.Linear(4, 1)
    _CountingSGD.calls = 0
    stepper = _stepper(model, [_CountingSGD(model.parameters(), lr=0.1)])
    for _ in range(3):
        _backward(model)
        stepper.step(0, 1, HostFiniteGuard("raise"))
    assert _CountingSGD.calls == 3
    assert model.weight.grad is None


def test_a_zero_grad_set_on_the_instance_gets_the_call():
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    optimizer.zero_grad = lambda set_to_none=True: calls.append(set_to_none)
    _stepper(model, [optimizer]).zero_grad()
    assert calls == [True]


def test_the_torch_profiler_still_sees_zero_grad(tmp_path):
    model = torch.nn.Linear(4, 1)
    stepper = _stepper(model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    _backward(model)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        stepper.step(0, 1, HostFiniteGuard("raise"))
    assert any("zero_grad" in event.name for event in prof.events())
    assert model.weight.grad is None
