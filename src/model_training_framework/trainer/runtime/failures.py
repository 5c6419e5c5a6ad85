"""One rank's error stops every rank, promptly, and every rank's error names the rank that failed.

NOTE [failure propagation]: a rank that raises inside ``fit`` (a step function, a hook, a
loader, a save) leaves its peers waiting in the next collective it will never enter. Gloo ends
that wait only when the failing process closes its sockets, NCCL only at the process-group
timeout, and a user's script may catch the error and keep the process alive. So the failure is
announced through the process group's key-value store, which works alike under torchrun and a
plain ``srun`` (no launcher has to help):

1. the failing rank writes ``rank R failed: <error>`` under a key of this ``fit`` (the first
   writer wins, so the root cause is kept when errors cascade), logs it, and waits a few seconds
   for every peer to acknowledge before it raises and tears the process group down;
2. every rank runs a small watcher thread that polls the key; on a peer's failure it logs
   ``rank S stops: rank R failed: ...`` and acknowledges. A peer blocked in a collective is
   released when the failing rank's process group goes away (Gloo) and raises
   :class:`RankFailedError` naming rank R; if it is still inside ``fit`` after a grace period
   (NCCL, or a failing rank that does not exit), the watcher ends the process with exit code 1.

Errors that every rank already raises together (an :class:`AgreedError`, decided through a
collective) are not announced again. The process-group timeout stays the last resort.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from torch.distributed import DistError as _DistError

from model_training_framework.trainer.runtime.distributed import AgreedError, RankFailedError

__all__ = ["FailureWatch", "NullFailureWatch", "build_failure_watch"]

logger = logging.getLogger(__name__)

_POLL_S = 0.2  # how often a watcher looks for a peer's failure
_ACK_TIMEOUT_S = 5.0  # how long a failing rank waits for its peers to take note
_EXIT_GRACE_S = 10.0  # how long a peer may take to leave fit on its own before it is ended
_EXIT_CODE = 1
_FIT_COUNTER_KEY = "mtf/fit_counter"


class NullFailureWatch:
    """The single-process watch: nothing to tell, nobody to watch."""

    peer_failure: str | None = None

    def __enter__(self) -> NullFailureWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def report(self, error: BaseException) -> BaseException:
        """Return the error to raise (``error`` itself)."""
        return error


class FailureWatch:
    """Announces this rank's failure to its peers and watches for theirs (see the NOTE above).

    Args:
        store: the process group's key-value store (``check``/``get``/``add``/``compare_set``).
        rank: this process's rank.
        world_size: number of ranks.
        generation: distinguishes the ``fit`` calls of one process group (same on every rank).
        exit_fn: ends the process (``os._exit``; injectable for tests).

    Example:
        >>> with FailureWatch(store, rank, world_size, generation=0) as watch:  # doctest: +SKIP
        ...     try:
        ...         train()
        ...     except BaseException as err:
        ...         raise watch.report(err) from err
    """

    def __init__(
        self,
        store: Any,
        rank: int,
        world_size: int,
        *,
        generation: int,
        exit_fn: Callable[[int], Any] = os._exit,
        poll_s: float = _POLL_S,
        ack_timeout_s: float = _ACK_TIMEOUT_S,
        exit_grace_s: float = _EXIT_GRACE_S,
    ) -> None:
        self._store = store
        self._rank = rank
        self._world_size = world_size
        self._key = f"mtf/failure/{generation}"
        self._ack_key = f"{self._key}/acks"
        self._exit_fn = exit_fn
        self._poll_s = poll_s
        self._ack_timeout_s = ack_timeout_s
        self._exit_grace_s = exit_grace_s
        self._stopped = threading.Event()
        self._ack_lock = threading.Lock()
        self._has_acked = False
        self._thread: threading.Thread | None = None
        self._reported: BaseException | None = None
        self.peer_failure: str | None = None

    def __enter__(self) -> FailureWatch:
        self._thread = threading.Thread(target=self._watch, name="mtf-failure-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def report(self, error: BaseException) -> BaseException:
        """Tell the peers that this rank failed with ``error``; return the error to raise here.

        When this rank failed first, that is ``error`` (raised after the peers acknowledged, or
        a few seconds). When another rank failed first, a broken collective (a ``RuntimeError``
        from torch.distributed) becomes a :class:`RankFailedError` naming that rank; any other
        error keeps its type and gets a note naming it.
        """
        if isinstance(error, AgreedError):
            self._acknowledge()  # every rank raises it together already: nothing to announce
            return error
        if error is self._reported:
            return error  # announced already (by DistributedContext.all_ranks_call)
        mine = f"rank {self._rank} failed: {type(error).__name__}: {error}"
        try:
            first = _text(self._store.compare_set(self._key, "", mine))
        except RuntimeError as err:  # the store's host (rank 0 or the launcher) is gone
            logger.error("%s (could not tell the other ranks: %s)", mine, err)
            return error
        if first == mine:
            logger.error("%s; stopping every rank", mine)
            self._reported = error
            self._wait_for_acknowledgements()
            return error
        if first.startswith(f"rank {self._rank} failed:"):
            return error  # this rank's earlier failure broke what it did next
        self._acknowledge()
        if type(error) is RuntimeError or isinstance(error, _DistError):
            return RankFailedError(f"{first} (rank {self._rank} stopped because of it)")
        error.add_note(f"{first} first")
        return error

    # ------------------------------------------------------------------ internals
    def _watch(self) -> None:
        while not self._stopped.wait(self._poll_s):
            try:
                if not self._store.check([self._key]):
                    continue
                failure = _text(self._store.get(self._key))
            except RuntimeError as err:  # the store's host exited: nothing left to watch
                logger.debug("rank %d: failure watch ends (%s)", self._rank, err)
                return
            if failure.startswith(f"rank {self._rank} failed:"):
                return  # this rank's own report
            self.peer_failure = failure
            logger.error("rank %d stops: %s", self._rank, failure)
            self._acknowledge()
            self._end_if_still_running(failure)
            return

    def _end_if_still_running(self, failure: str) -> None:
        if self._stopped.wait(self._exit_grace_s):
            return  # fit ended on its own (the broken collective raised)
        logger.critical(
            "rank %d is still busy %.0f s after the failure (%s); ending the process",
            self._rank,
            self._exit_grace_s,
            failure,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        self._exit_fn(_EXIT_CODE)

    def _acknowledge(self) -> None:
        with self._ack_lock:
            if self._has_acked:
                return
            self._has_acked = True
        try:
            self._store.add(self._ack_key, 1)
        except RuntimeError as err:
            logger.debug("rank %d could not acknowledge the failure (%s)", self._rank, err)

    def _wait_for_acknowledgements(self) -> None:
        deadline = time.monotonic() + self._ack_timeout_s
        num_peers = self._world_size - 1
        while time.monotonic() < deadline:
            try:
                if self._store.add(self._ack_key, 0) >= num_peers:
                    return
            except RuntimeError:
                return
            time.sleep(0.05)
        logger.warning(
            "rank %d: not every rank acknowledged the failure within %.0f s",
            self._rank,
            self._ack_timeout_s,
        )


def build_failure_watch(dist_context: Any) -> FailureWatch | NullFailureWatch:
    """A :class:`FailureWatch` over the default process group's store for this ``fit``, or the
    null watch in a single process."""
    if not dist_context.is_distributed:
        return NullFailureWatch()
    store = dist_context.store()
    # Every rank counts itself in once per fit, and one fit's counts all come before the next
    # fit's (its collectives separate them), so this numbers the fits alike on every rank.
    generation = (store.add(_FIT_COUNTER_KEY, 1) - 1) // dist_context.world_size
    return FailureWatch(store, dist_context.rank, dist_context.world_size, generation=generation)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
