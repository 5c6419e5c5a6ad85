"""DataLoader worker processes ignore the stop signals, so only the main process handles them.

NOTE [worker signals]: Slurm (at preemption, at the time limit and on ``scancel``) and systemd
send SIGTERM to every process of the job, DataLoader workers included. torch's workers die on a
SIGTERM that their parent did not send, and the main process then fails with "DataLoader worker
(pid N) is killed by signal: Terminated" before it could checkpoint. Workers therefore ignore
SIGTERM and the preemption signal (set first thing in each worker, before the user's own
``worker_init_fn``); the main process takes the preemption path (agreed stop, checkpoint,
status "preempted"). Workers still end as usual: at the end of a pass (or when the trainer closes
a persistent loader), when their parent dies (torch's watchdog), or on SIGKILL.

Because they ignore SIGTERM, workers must not outlive the process's last Python code: at exit,
``multiprocessing`` terminates its daemonic children with SIGTERM and then joins them without a
timeout, so one live shielded worker keeps the process from ever exiting. Workers left alive by
an error are the danger (the traceback keeps the iterator, and so its workers, alive; a
persistent loader keeps them anyway), so the trainer shuts the workers of every iterator it
opened down itself (``trainer.data.user_loaders.stop_workers``): when a validation pass raises, and for the train
loaders when ``fit`` ends, however it ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["IgnoreSignalsInWorker", "shield_workers"]


class IgnoreSignalsInWorker:
    """A ``worker_init_fn`` that ignores ``signals``, then calls the user's ``worker_init_fn``.

    Picklable (a module-level class), so it also works with the spawn and forkserver contexts.

    Args:
        signals: signal numbers to ignore in the worker.
        user_fn: the loader's own ``worker_init_fn`` (None: none).
    """

    def __init__(self, signals: Sequence[int], user_fn: Callable[[int], Any] | None) -> None:
        self.signals = tuple(int(s) for s in signals)
        self.user_fn = user_fn

    def __call__(self, worker_id: int) -> None:
        for signum in self.signals:
            signal.signal(signum, signal.SIG_IGN)
        if self.user_fn is not None:
            self.user_fn(worker_id)


def shield_workers(loaders: Iterable[Any], signals: Sequence[int]) -> None:
    """Make the worker processes of ``loaders`` ignore ``signals`` (NOTE [worker signals]).

    Wraps each loader's ``worker_init_fn`` (once; the user's function still runs, after ours).
    Loaders without worker processes are left alone. Takes effect for workers started from now
    on, so call it before the loaders are iterated.

    Args:
        loaders: DataLoaders (train and validation).
        signals: signal numbers the workers ignore (SIGTERM and the preemption signal).
    """
    for loader in loaders:
        if getattr(loader, "num_workers", 0) <= 0:
            continue
        current = loader.worker_init_fn
        if isinstance(current, IgnoreSignalsInWorker):
            current = current.user_fn
        loader.worker_init_fn = IgnoreSignalsInWorker(signals, current)
