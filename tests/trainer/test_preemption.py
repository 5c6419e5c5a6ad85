"""Tests for trainer/runtime/preemption.py with real signals (in-process and in a child process)."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import pytest

from model_training_framework.trainer.config import PreemptionConfig
from model_training_framework.trainer.runtime.preemption import (
    PreemptionHandler,
    StopRequest,
    resolve_signal,
)

HANDLED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)


def _config(**overrides):
    return PreemptionConfig(**{"max_checkpoint_sec": 2.0, **overrides})


@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in HANDLED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def handler():
    installed = PreemptionHandler(_config())
    installed.install()
    yield installed
    installed.uninstall()


# signal.raise_signal delivers the signal to this thread and runs the Python handler before
# returning, so the effect is visible on the next line without waiting.


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_preemption_signals_request_preempt(handler, sig):
    assert handler.local_request is StopRequest.NONE

    signal.raise_signal(sig)

    assert handler.local_request is StopRequest.PREEMPT
    assert handler.agreed_request() is StopRequest.PREEMPT


def test_sigint_requests_interrupt(handler):
    signal.raise_signal(signal.SIGINT)

    assert handler.local_request is StopRequest.INTERRUPT


def test_second_sigint_force_quits_with_keyboard_interrupt(handler):
    signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_sigint_while_preemption_pending_force_quits(handler):
    signal.raise_signal(signal.SIGUSR1)

    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_sigint_after_another_ranks_stop_was_agreed_force_quits():
    other_rank_preempted = lambda local: int(StopRequest.PREEMPT)  # noqa: E731
    with PreemptionHandler(_config(), reduce_max=other_rank_preempted) as handler:
        handler.agreed_request()

        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def test_configured_signal_replaces_sigusr1():
    before_usr1 = signal.getsignal(signal.SIGUSR1)
    with PreemptionHandler(_config(signal="USR2")) as handler:
        signal.raise_signal(signal.SIGUSR2)

        assert handler.local_request is StopRequest.PREEMPT
        assert signal.getsignal(signal.SIGUSR1) is before_usr1


def test_uninstall_restores_previous_handlers():
    def previous_usr1(signum, frame):
        pass

    signal.signal(signal.SIGUSR1, previous_usr1)
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    handler = PreemptionHandler(_config())

    handler.install()
    installed = {sig: signal.getsignal(sig) for sig in HANDLED}
    handler.uninstall()

    assert installed[signal.SIGUSR1] != previous_usr1
    assert installed[signal.SIGTERM] != before[signal.SIGTERM]
    assert installed[signal.SIGINT] != before[signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


def test_installing_twice_still_restores_the_original_handlers():
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    handler = PreemptionHandler(_config())

    handler.install()
    handler.install()
    handler.uninstall()

    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


def test_ignored_sigint_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    with PreemptionHandler(_config()):
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_install_outside_main_thread_warns_and_changes_nothing(caplog):
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    handler = PreemptionHandler(_config())

    with caplog.at_level(logging.WARNING):
        worker = threading.Thread(target=handler.install)
        worker.start()
        worker.join()

    assert "outside the main thread" in caplog.text
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


def test_another_ranks_preemption_is_agreed_without_a_local_signal(caplog):
    seen = []

    def reduce_max(local):
        seen.append(local)
        return max(local, int(StopRequest.PREEMPT))  # the other rank got SIGUSR1

    handler = PreemptionHandler(_config(), reduce_max=reduce_max)

    with caplog.at_level(logging.WARNING):
        assert handler.agreed_request() is StopRequest.PREEMPT
        assert handler.agreed_request() is StopRequest.PREEMPT

    assert seen == [0, 0]
    assert handler.local_request is StopRequest.NONE  # only this process's own signals
    [record] = caplog.records  # announced once
    assert "PREEMPT, signalled on another rank" in record.getMessage()


def test_larger_request_wins_when_ranks_disagree():
    other_rank_interrupted = lambda local: max(local, int(StopRequest.INTERRUPT))  # noqa: E731
    with PreemptionHandler(_config(), reduce_max=other_rank_interrupted) as handler:
        signal.raise_signal(signal.SIGTERM)

        assert handler.agreed_request() is StopRequest.PREEMPT


def test_no_request_anywhere_means_keep_training():
    handler = PreemptionHandler(_config(), reduce_max=lambda local: max(local, 0))

    assert handler.agreed_request() is StopRequest.NONE


def test_clear_forgets_the_request(handler):
    signal.raise_signal(signal.SIGUSR1)

    handler.clear()

    assert handler.local_request is StopRequest.NONE


def test_checkpoint_deadline_compares_with_max_checkpoint_sec():
    handler = PreemptionHandler(_config(max_checkpoint_sec=2.0))

    assert not handler.checkpoint_deadline_exceeded(1.5)
    assert handler.checkpoint_deadline_exceeded(2.5)


@pytest.mark.parametrize("name", ["SIGUSR2", "usr2", "sigusr2"])
def test_signal_names_are_resolved_in_any_spelling(name):
    assert resolve_signal(name) is signal.SIGUSR2


def test_signal_numbers_are_resolved_like_the_config_accepts_them():
    assert resolve_signal(int(signal.SIGUSR2)) is signal.SIGUSR2


def test_unknown_signal_name_is_rejected_with_choices():
    with pytest.raises(ValueError, match=r"'SIGNOPE'.*SIGUSR1"):
        resolve_signal("SIGNOPE")


@pytest.mark.parametrize("name", ["SIGINT", "SIGKILL", "STOP"])
def test_signals_that_cannot_mean_preemption_are_rejected(name):
    with pytest.raises(ValueError, match=r"signal: SIG[A-Z]+ cannot be the preemption signal"):
        _config(signal=name)  # the config refuses them first, naming the field
    unchecked = SimpleNamespace(
        signal=name, max_checkpoint_sec=2.0, requeue_job=True, resume_from_latest_symlink=True
    )
    with pytest.raises(ValueError, match=r"preemption\.signal cannot be SIG"):
        PreemptionHandler(unchecked)


# ---- a real child process ---------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import faulthandler
    import time
    from model_training_framework.trainer.config import PreemptionConfig
    from model_training_framework.trainer.runtime.preemption import PreemptionHandler, StopRequest

    faulthandler.dump_traceback_later(50, exit=True)  # a hang shows where, instead of a timeout
    handler = PreemptionHandler(PreemptionConfig(signal="SIGUSR1", requeue_job=False))
    handler.install()
    print("ready", flush=True)
    while (request := handler.agreed_request()) is StopRequest.NONE:
        # Stands for a training step, which releases the GIL. That matters: when the kernel
        # delivers the signal to a non-main thread (torch starts some), CPython 3.11 only
        # notices it when the main thread next takes the GIL (bpo-40010), so a pure-Python
        # spin loop could miss it forever.
        time.sleep(0.001)
    print(request.name, flush=True)
    """
)


@pytest.mark.parametrize(
    "sig",
    [signal.SIGUSR1, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],  # child imports torch
)
def test_child_process_stops_its_loop_on_a_signal_from_outside(sig):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready = child.stdout.readline().strip()
        if ready == "ready":
            os.kill(child.pid, sig)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()

    assert ready == "ready", err
    assert (out.strip(), child.returncode) == ("PREEMPT", 0), err


# ---- requeue ----------------------------------------------------------------------------


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch):
    """A stand-in `scontrol` first on PATH that records its arguments (real Slurm is covered
    by the launcher tests). Write `exit_code` to make it fail."""
    record = tmp_path / "scontrol_args"
    script = tmp_path / "bin" / "scontrol"
    script.parent.mkdir()
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            echo "$@" >> '{record}'
            if [ -f '{tmp_path}/exit_code' ]; then
                echo "scontrol: error: Invalid job id specified" >&2
                exit "$(cat '{tmp_path}/exit_code')"
            fi
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    return SimpleNamespace(record=record, fail=lambda: (tmp_path / "exit_code").write_text("1"))


def test_requeue_outside_slurm_does_nothing(fake_scontrol, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)

    assert PreemptionHandler(_config()).requeue_if_under_slurm() is False
    assert not fake_scontrol.record.exists()


def test_requeue_disabled_does_nothing_under_slurm(fake_scontrol, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")

    assert PreemptionHandler(_config(requeue_job=False)).requeue_if_under_slurm() is False
    assert not fake_scontrol.record.exists()


def test_requeue_under_slurm_runs_scontrol_requeue_job_id(fake_scontrol, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")

    assert PreemptionHandler(_config()).requeue_if_under_slurm() is True
    assert fake_scontrol.record.read_text().split() == ["requeue", "4242"]


def test_requeue_of_an_array_task_names_the_task_not_the_whole_array(fake_scontrol, monkeypatch):
    # The array task that carries the array's own id: `scontrol requeue 4242` would requeue
    # every task of array 4242 (NOTE [array task ids] in slurm_env.py).
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")

    assert PreemptionHandler(_config()).requeue_if_under_slurm() is True
    assert fake_scontrol.record.read_text().split() == ["requeue", "4242_1"]


def test_failed_requeue_is_logged_with_stderr_and_returns_false(fake_scontrol, monkeypatch, caplog):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    fake_scontrol.fail()

    with caplog.at_level(logging.ERROR):
        assert PreemptionHandler(_config()).requeue_if_under_slurm() is False

    assert "Invalid job id specified" in caplog.text
    assert "4242" in caplog.text


def test_after_a_requeue_sigterm_stays_ignored_so_the_process_can_finish(
    fake_scontrol, monkeypatch
):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        handler = PreemptionHandler(_config())
        with handler:
            assert handler.requeue_if_under_slurm() is True
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)  # Slurm's requeue kill: ignored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_requeue_handlers_are_restored(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    with PreemptionHandler(_config()) as handler:
        handler.requeue_if_under_slurm()
    assert signal.getsignal(signal.SIGTERM) is previous
