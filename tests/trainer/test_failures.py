"""FailureWatch over a real (in-process) torch.distributed store: the failing rank announces
itself, its peer names it, and a peer that stays busy is ended after the grace period."""

from __future__ import annotations

import threading

import pytest
import torch.distributed as dist

from model_training_framework.trainer.runtime.distributed import RankFailedError
from model_training_framework.trainer.runtime.failures import FailureWatch


class ExitRecorder:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def _watch(store, rank, exit_fn=None, *, grace_s=30.0, generation=0) -> FailureWatch:
    return FailureWatch(
        store,
        rank,
        2,
        generation=generation,
        exit_fn=exit_fn or ExitRecorder(),
        poll_s=0.01,
        ack_timeout_s=5.0,
        exit_grace_s=grace_s,
    )


def test_first_failure_is_kept_and_the_peer_error_names_that_rank():
    store = dist.HashStore()
    with _watch(store, 0) as rank0, _watch(store, 1) as rank1:
        own = ValueError("bad batch")
        assert rank1.report(own) is own  # rank 0's watcher acknowledges, so no 5 s wait
        broken = RuntimeError("Connection closed by peer")
        error = rank0.report(broken)
    assert isinstance(error, RankFailedError)
    assert str(error) == ("rank 1 failed: ValueError: bad batch (rank 0 stopped because of it)")
    assert rank0.peer_failure == "rank 1 failed: ValueError: bad batch"


def test_an_error_of_its_own_keeps_its_type_and_gets_a_note_naming_the_first_rank():
    store = dist.HashStore()
    with _watch(store, 0) as rank0, _watch(store, 1) as rank1:
        rank0.report(KeyError("x"))
        mine = TypeError("also wrong here")
        assert rank1.report(mine) is mine
    assert mine.__notes__ == ["rank 0 failed: KeyError: 'x' first"]


def test_a_peer_still_busy_after_the_grace_period_is_ended():
    store = dist.HashStore()
    ended = ExitRecorder()
    with _watch(store, 0, ended, grace_s=0.05), _watch(store, 1) as rank1:
        rank1.report(OSError("disk"))
        assert ended.called.wait(5.0)
    assert ended.codes == [1]


def test_a_peer_that_leaves_fit_in_time_is_not_ended():
    store = dist.HashStore()
    ended = ExitRecorder()
    with _watch(store, 1) as rank1, _watch(store, 0, ended, grace_s=5.0) as rank0:
        rank1.report(OSError("disk"))
        while rank0.peer_failure is None:
            threading.Event().wait(0.01)
    assert not ended.called.wait(0.1)


def test_each_fit_has_its_own_key():
    store = dist.HashStore()
    with _watch(store, 0, generation=0) as old, _watch(store, 1, generation=0):
        old.report(OSError("first fit"))
    ended = ExitRecorder()
    with _watch(store, 0, ended, generation=1) as new:
        threading.Event().wait(0.1)
    assert new.peer_failure is None and not ended.codes


@pytest.mark.parametrize("error", [RankFailedError("rank 0 failed, so rank 1 stops too: x")])
def test_an_agreed_error_is_not_announced_again(error):
    store = dist.HashStore()
    with _watch(store, 1) as rank1:
        assert rank1.report(error) is error
    assert not store.check(["mtf/failure/0"])
