"""``ddp_worker.py --check-collectives`` and ``--check-stuck-collective``: the error paths of
``DistributedContext`` without a trainer; each must end every rank, none may hang."""

from __future__ import annotations

import torch
import torch.distributed as dist


def check_collectives(rank: int) -> int:
    """Error paths of DistributedContext: each must raise on every rank, none may hang."""
    from model_training_framework.trainer.runtime.distributed import (
        DistributedContext,
        RankFailedError,
        RankZeroError,
    )

    ctx = DistributedContext.from_environment()
    ctx.setup(torch.device("cpu"))
    try:
        assert ctx.reduce_sum([1.0, float(rank)]) == [2.0, 1.0]
        try:
            ctx.reduce_sum([1.0] * (rank + 1))
        except ValueError as err:
            print(f"rank {rank} reduce_sum error: {err}", flush=True)
        same = {("a", "loss", 0): 1.0 + rank, ("", "loss", 0): 1.0}
        assert ctx.reduce_sum_by_slot(same) == {("a", "loss", 0): 3.0, ("", "loss", 0): 2.0}
        own = {("a", "loss", 0): 1.0, ("a", f"only_rank{rank}", 0): 5.0 + rank}
        assert ctx.reduce_sum_by_slot(own) == {
            ("a", "loss", 0): 2.0,
            ("a", f"only_rank{rank}", 0): 5.0 + rank,  # this rank's slots first, in its order
            ("a", f"only_rank{1 - rank}", 0): 6.0 - rank,
        }
        try:
            ctx.reduce_sum_by_slot({(f"dl{rank}", "loss", 0): 1.0})
        except ValueError as err:
            print(f"rank {rank} reduce_sum_by_slot error: {err}", flush=True)
        grads = [torch.full((2, 2), float(rank)), torch.full((3,), 2.0 * rank)]
        ctx.all_reduce_mean_(grads)
        assert torch.equal(grads[0], torch.full((2, 2), 0.5)) and torch.equal(
            grads[1], torch.ones(3)
        )

        def fail() -> None:
            raise FileNotFoundError("no such checkpoint")

        try:
            ctx.rank_zero_call(fail)
        except (FileNotFoundError, RankZeroError) as err:
            print(f"rank {rank} rank_zero_call error: {type(err).__name__}: {err}", flush=True)
        assert ctx.rank_zero_call(lambda: "chosen") == "chosen"

        def fail_on_rank_one() -> int:
            if rank == 1:
                raise OSError("disk full")
            return rank

        try:
            ctx.all_ranks_call(fail_on_rank_one)
        except (OSError, RankFailedError) as err:
            print(f"rank {rank} all_ranks_call error: {type(err).__name__}: {err}", flush=True)
        assert ctx.all_ranks_call(lambda: rank * 10) == [0, 10]
        print(f"rank {rank} collectives done", flush=True)
    finally:
        ctx.teardown()
    return 0


def check_stuck_collective(rank: int) -> int:
    """Rank 0's step fails before a collective that rank 1's step runs (a sharded write): the
    announced failure must end rank 1 instead of leaving it there until the timeout."""
    from model_training_framework.trainer.runtime.distributed import DistributedContext
    from model_training_framework.trainer.runtime.failures import build_failure_watch

    ctx = DistributedContext.from_environment()
    ctx.setup(torch.device("cpu"))

    def write() -> None:
        if rank == 0:
            raise OSError("disk full")
        dist.barrier()  # rank 0 never comes

    with build_failure_watch(ctx) as watch:
        ctx.failure_reporter = watch.report
        ctx.all_ranks_call(write)
    return 0
