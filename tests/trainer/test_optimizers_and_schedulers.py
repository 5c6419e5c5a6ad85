"""GenericTrainer: optimizer routing per loader, gradient windows, clipping, schedulers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    TrainerHooks,
)

from .fit_helpers import (
    TwoHeads,
    make_config,
    make_data,
    make_loader,
    make_trainer,
    read_jsonl,
)


# ---------------------------------------------------------------- optimizers and gradients
def test_only_the_mapped_optimizer_steps(tmp_path):
    model = TwoHeads()
    opts = [
        torch.optim.SGD(model.head0.parameters(), lr=0.1),
        torch.optim.SGD(model.head1.parameters(), lr=0.1),
    ]
    cfg = make_config(
        tmp_path, per_loader_optimizer_id=[0, 1], loader={"dataloader_names": ["a", "b"]}
    )
    trainer = make_trainer(cfg, model, opts)
    head0, head1 = model.head0.weight.clone(), model.head1.weight.clone()
    trainer.fit([make_loader(), make_loader(8, 1)], max_steps=1)  # round robin: loader a first
    assert not torch.equal(head0, model.head0.weight)
    assert torch.equal(head1, model.head1.weight)


def test_gradients_never_leak_into_a_later_window(tmp_path):
    # GAS 2 with round robin: every window is [a, b] and closes on b, so only optimizer 1 steps;
    # a's gradients on head0 are cleared each window instead of piling up.
    model = TwoHeads()
    opts = [
        torch.optim.SGD(model.head0.parameters(), lr=0.1),
        torch.optim.SGD(model.head1.parameters(), lr=0.1),
    ]
    cfg = make_config(
        tmp_path, per_loader_optimizer_id=[0, 1], performance={"gradient_accumulation_steps": 2}
    )
    seen_grads = []

    class Probe(TrainerHooks):
        def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
            seen_grads.append(model.head0.weight.grad)

    trainer = make_trainer(cfg, model, opts)
    trainer.add_hook(Probe())
    head0 = model.head0.weight.clone()
    result = trainer.fit([make_loader(), make_loader(8, 1)], max_epochs=2)
    assert result.global_step == 4
    assert torch.equal(head0, model.head0.weight)
    assert all(g is None for g in seen_grads[::2]), "a window started with leftover gradients"


def test_loss_weights_scale_gradients_before_backward(tmp_path):
    grads = {}
    for weight in (1.0, 3.0):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        class Grab(TrainerHooks):
            def on_before_optimizer_step(self, trainer, optimizer_idx, weight=weight, model=model):
                grads[weight] = model.weight.grad.clone()

        trainer = make_trainer(
            make_config(tmp_path / str(weight), loss_weights_per_loader=[weight]), model
        )
        trainer.add_hook(Grab())
        trainer.fit([make_loader()], max_steps=1)
    torch.testing.assert_close(grads[3.0], 3 * grads[1.0])


def test_gradient_accumulation_divides_the_loss(tmp_path):
    grads = {}
    for gas in (1, 2):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        class Grab(TrainerHooks):
            def on_before_optimizer_step(self, trainer, optimizer_idx, gas=gas, model=model):
                grads[gas] = model.weight.grad.clone()

        # one loader of two identical batches: the accumulated gradient equals one batch's
        data = make_data(4, 0)
        loader = DataLoader(
            TensorDataset(torch.cat([data.tensors[0]] * 2), torch.cat([data.tensors[1]] * 2)),
            batch_size=4,
        )
        trainer = make_trainer(
            make_config(tmp_path / str(gas), performance={"gradient_accumulation_steps": gas}),
            model,
        )
        trainer.add_hook(Grab())
        trainer.fit([loader], max_steps=1)
    torch.testing.assert_close(grads[2], grads[1])


def test_clip_grad_norm_bounds_the_update(tmp_path):
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(50.0)
    before = [p.clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = make_trainer(make_config(tmp_path, performance={"clip_grad_norm": 0.5}), model, [opt])
    trainer.fit([make_loader()], max_steps=1)
    delta = torch.sqrt(
        sum(
            ((p.cpu() - b.cpu()) ** 2).sum()
            for p, b in zip(model.parameters(), before, strict=True)
        )
    )
    assert float(delta) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("interval, expected", [("step", 6), ("epoch", 3)])
def test_scheduler_steps_on_its_interval_only(tmp_path, interval, expected):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 0.5**n)
    trainer = make_trainer(
        make_config(tmp_path), model, [opt], schedulers=[{"scheduler": sched, "interval": interval}]
    )
    trainer.fit([make_loader()], max_epochs=3)  # 2 steps per epoch
    assert sched.last_epoch == expected
    lrs = [row["train/lr/opt_0"] for row in read_jsonl(tmp_path) if "train/lr/opt_0" in row]
    assert lrs[-1] == pytest.approx(0.5 ** (expected if interval == "step" else 2))


def test_bare_scheduler_defaults_to_step_interval(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    make_trainer(make_config(tmp_path), model, [opt], schedulers=[sched]).fit(
        [make_loader()], max_epochs=2
    )
    assert sched.last_epoch == 4


def _two_optimizers():
    model = TwoHeads()
    return model, [
        torch.optim.SGD(model.head0.parameters(), lr=1.0),
        torch.optim.SGD(model.head1.parameters(), lr=1.0),
    ]


def test_none_leaves_an_optimizer_without_a_scheduler(tmp_path):
    # With two optimizers a scheduler for the second alone could not be given: [None, s]
    # failed with "schedulers[0] has no step() method: got NoneType".
    model, (opt0, opt1) = _two_optimizers()
    sched = torch.optim.lr_scheduler.StepLR(opt1, step_size=1, gamma=0.5)
    cfg = make_config(
        tmp_path, loader={"dataloader_names": ["a", "b"]}, per_loader_optimizer_id=[0, 1]
    )
    trainer = make_trainer(cfg, model, [opt0, opt1], schedulers=[None, sched])
    trainer.fit([make_loader(), make_loader(8, 1)], max_epochs=1)  # 2 steps of each optimizer
    assert sched.last_epoch == 2
    assert opt0.param_groups[0]["lr"] == 1.0 and opt1.param_groups[0]["lr"] == 0.25


def test_a_scheduler_at_the_index_of_another_optimizer_is_refused(tmp_path):
    # [s] with s built on optimizer 1 was stepped after optimizer 0's steps, silently.
    model, (opt0, opt1) = _two_optimizers()
    sched = torch.optim.lr_scheduler.StepLR(opt1, step_size=1)
    with pytest.raises(ValueError, match=r"schedulers\[0\] follows optimizers\[1\].*\[None, "):
        make_trainer(make_config(tmp_path), model, [opt0, opt1], schedulers=[sched])


def test_a_scheduler_interval_is_read_in_any_case(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    item = {"scheduler": sched, "interval": "Epoch"}  # as ExperimentConfig.scheduler reads it
    make_trainer(make_config(tmp_path), model, [opt], schedulers=[item]).fit(
        [make_loader()], max_epochs=2
    )
    assert sched.last_epoch == 2


@pytest.mark.parametrize("interval", [None, "epoch"])
def test_a_scheduler_that_steps_on_a_metric_is_refused_when_the_trainer_is_built(
    tmp_path, interval
):
    # ReduceLROnPlateau failed at the first optimizer step with torch's "step() missing 1
    # required positional argument: 'metrics'".
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    item = plateau if interval is None else {"scheduler": plateau, "interval": interval}
    with pytest.raises(
        TypeError, match=r"schedulers\[0\].*ReduceLROnPlateau.*metric.*on_validation_end"
    ):
        make_trainer(make_config(tmp_path), model, [opt], schedulers=[item])


def test_before_optimizer_step_hook_sees_the_clipped_gradients(tmp_path):
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(50.0)
    norms = []

    class GradNorm(TrainerHooks):
        def on_before_optimizer_step(self, trainer, optimizer_idx):
            grads = [p.grad for p in trainer.unwrapped_model.parameters()]
            norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))

    trainer = make_trainer(make_config(tmp_path, performance={"clip_grad_norm": 0.5}), model)
    trainer.add_hook(GradNorm())
    trainer.fit([make_loader()], max_steps=2)
    assert norms and all(n == pytest.approx(0.5, rel=1e-4) for n in norms), norms
