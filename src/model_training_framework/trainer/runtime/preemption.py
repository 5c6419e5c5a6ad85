"""Stop requests from signals: a flag set by the handler, agreed across ranks, and the requeue.

NOTE [preemption]: signal handlers only record what was asked (``StopRequest``); nothing is
saved from inside a handler. The trainer calls :meth:`PreemptionHandler.agreed_request` at
every optimizer-step boundary and before every validation batch (NOTE [validation cut short]
in validation.py) on every rank; it reduces the local requests with MAX, so when
only one rank got the signal all ranks still stop at the same step (no rank waits in a
collective that the others skipped). That all-reduce runs on a CPU tensor over a Gloo group
(see NOTE [host collectives] in distributed.py), so even under NCCL the per-step agreement never
synchronises the GPU. Rank 0 then writes the checkpoint, calls
:meth:`PreemptionHandler.requeue_if_under_slurm` (preemption only) and ``fit`` returns.

Signals:

- ``preemption.signal`` (default SIGUSR1, what ``sbatch --signal=B:USR1@<grace>`` sends before
  the time limit) and SIGTERM (what Slurm sends on preemption or ``scancel``): PREEMPT.
- SIGINT (Ctrl-C): INTERRUPT. A second SIGINT while a stop is pending raises
  ``KeyboardInterrupt`` at once, so a user can force-quit a run that is slow to stop.

Python runs the handlers in the main thread. When the kernel delivers a signal to another
thread (torch and data loading start some), CPython notices it the next time the main thread
takes the GIL, which every training step does (torch kernels and I/O release it); a
pure-Python loop that never releases the GIL could miss it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from enum import IntEnum
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from model_training_framework.errors import LauncherError
from model_training_framework.process_utils import run_command
from model_training_framework.slurm_env import current_slurm_job_id
from model_training_framework.trainer.config.fields import canonical_signal_name

if TYPE_CHECKING:
    from model_training_framework.trainer.config import PreemptionConfig

__all__ = ["PreemptionHandler", "StopRequest", "resolve_signal"]

logger = logging.getLogger(__name__)

_REQUEUE_TIMEOUT_S = 30.0

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class StopRequest(IntEnum):
    """Why training should stop; when ranks disagree the larger value wins."""

    NONE = 0
    INTERRUPT = 1
    PREEMPT = 2


def resolve_signal(name: str | int) -> signal.Signals:
    """The signal named ``name`` (``"SIGUSR1"``, ``"USR1"``, ``"sigusr1"`` or its number).

    Raises:
        ValueError: no such signal on this platform.
    """
    return signal.Signals[canonical_signal_name(name)]


_UNUSABLE_SIGNALS = {
    signal.SIGINT: "it is reserved for Ctrl-C (stop with status interrupted)",
    signal.SIGKILL: "it cannot be caught",
    signal.SIGSTOP: "it cannot be caught",
}


def _preemption_signal(name: str) -> signal.Signals:
    sig = resolve_signal(name)
    reason = _UNUSABLE_SIGNALS.get(sig)
    if reason is not None:
        raise ValueError(
            f"preemption.signal cannot be {sig.name}: {reason}; use SIGUSR1 (the default), "
            f"SIGUSR2 or another catchable signal"
        )
    return sig


class PreemptionHandler:
    """Turns signals into a :class:`StopRequest` that all ranks agree on.

    Args:
        config: the ``preemption`` section (``signal``, ``max_checkpoint_sec``,
            ``requeue_job``).
        reduce_max: maps this rank's request (an int) to the maximum over all ranks; the
            trainer passes an ``all_reduce(MAX)``; the default (identity) fits one process.

    Raises:
        ValueError: ``config.signal`` names no signal, or SIGINT/SIGKILL/SIGSTOP.

    Example:
        >>> handler = PreemptionHandler(config.preemption)      # doctest: +SKIP
        >>> with handler:                                        # doctest: +SKIP
        ...     while handler.agreed_request() is StopRequest.NONE:
        ...         train_one_step()
    """

    def __init__(
        self, config: PreemptionConfig, *, reduce_max: Callable[[int], int] = lambda x: x
    ) -> None:
        self._preempt_signals = tuple(
            dict.fromkeys([_preemption_signal(config.signal), signal.SIGTERM])
        )
        self._max_checkpoint_sec = config.max_checkpoint_sec
        self._should_requeue = config.requeue_job
        self._reduce_max = reduce_max
        # What signals received by this process asked for (read-only outside this class; a
        # plain attribute: the loop reads it at every step, see NOTE [signal flag]).
        self.local_request = StopRequest.NONE
        self._agreed = StopRequest.NONE
        self._previous: dict[signal.Signals, SignalHandler] = {}
        self._requeued = False

    @property
    def signals(self) -> tuple[signal.Signals, ...]:
        """The signals that request a preemption (the configured one and SIGTERM)."""
        return self._preempt_signals

    # -- installation ------------------------------------------------------------------------

    def install(self) -> None:
        """Install the handlers, remembering the previous ones.

        Does nothing (with a warning) outside the main thread, where Python cannot install
        signal handlers; installing twice is a no-op. SIGINT is left alone when it was ignored
        (as for background jobs started by a non-interactive shell).
        """
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "preemption signal handlers not installed: fit() runs outside the main thread, "
                "so %s and SIGINT will not trigger a checkpoint",
                "/".join(s.name for s in self._preempt_signals),
            )
            return
        if self._previous:
            return
        for sig in self._preempt_signals:
            self._previous[sig] = signal.signal(sig, self._on_preempt_signal)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_interrupt_signal)

    def uninstall(self) -> None:
        """Restore the handlers that were in place before :meth:`install`.

        After a successful requeue SIGTERM stays ignored: Slurm sends it to end the old run,
        and the process should still finish what follows ``fit`` (status files, exit code 3)
        instead of dying halfway; Slurm's SIGKILL after its KillWait remains the backstop.
        """
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._requeued and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def __enter__(self) -> PreemptionHandler:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.uninstall()

    # NOTE [signal flag]: handlers run in the main thread between any two bytecodes of the
    # training loop. Only they (and clear()) write `local_request`; the loop only reads it, since a
    # read-modify-write in the loop could overwrite a request that arrived in between.
    def _on_preempt_signal(self, signum: int, frame: FrameType | None) -> None:
        self.local_request = StopRequest.PREEMPT

    def _on_interrupt_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.local_request is not StopRequest.NONE or self._agreed is not StopRequest.NONE:
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt: force-quit
        self.local_request = StopRequest.INTERRUPT

    # -- decisions ---------------------------------------------------------------------------

    def agreed_request(self) -> StopRequest:
        """The request agreed by all ranks (the maximum of their local requests).

        Every rank must call this at the same optimizer-step boundaries (and validation
        batches), since it runs a collective under DDP.

        Returns:
            NONE (keep training), INTERRUPT or PREEMPT.
        """
        local = self.local_request  # read once: a handler may change it between any two bytecodes
        value = self._reduce_max(int(local))
        # Ranks nearly always agree; reusing ``local`` skips an Enum lookup on every step.
        agreed = local if value == local else StopRequest(value)
        if agreed > self._agreed:
            logger.warning(
                "stop requested (%s%s); checkpointing and stopping now",
                agreed.name,
                "" if agreed == local else ", signalled on another rank",
            )
            self._agreed = agreed
        return agreed

    def clear(self) -> None:
        """Forget any request (start of a new ``fit``)."""
        self.local_request = StopRequest.NONE
        self._agreed = StopRequest.NONE

    def checkpoint_deadline_exceeded(self, elapsed_s: float) -> bool:
        """Whether a preemption checkpoint that took ``elapsed_s`` seconds overran
        ``preemption.max_checkpoint_sec`` (the trainer then warns)."""
        return elapsed_s > self._max_checkpoint_sec

    def note_requeued(self) -> None:
        """Record that rank 0 requeued the job, so this rank too ignores the SIGTERM with which
        Slurm ends the old run and finishes what follows ``fit`` (see :meth:`uninstall`)."""
        self._requeued = True

    def requeue_if_under_slurm(self) -> bool:
        """Ask Slurm to requeue this job: ``scontrol requeue $SLURM_JOB_ID``, or for an array
        task ``scontrol requeue ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}`` (a bare array id
        would requeue every task of the array: NOTE [array task ids] in slurm_env.py).

        Only when ``preemption.requeue_job`` is true and ``SLURM_JOB_ID`` is set; the trainer
        calls it once, on rank 0, after the preemption checkpoint is written. A failure is
        logged as an error (with scontrol's stderr) and not raised: the checkpoint exists and
        ``fit`` must still return "preempted".

        Returns:
            Whether the requeue was requested successfully.
        """
        job_id = current_slurm_job_id()
        if not self._should_requeue or not job_id:
            logger.info(
                "not requeueing: %s",
                "preemption.requeue_job is false" if job_id else "not running under Slurm",
            )
            return False
        try:
            run_command(["scontrol", "requeue", job_id], timeout_s=_REQUEUE_TIMEOUT_S)
        except LauncherError as err:
            logger.error(
                "requeue of Slurm job %s failed (the checkpoint is written; resubmit the job to "
                "resume): %s",
                job_id,
                err,
            )
            return False
        logger.info("requested requeue of Slurm job %s", job_id)
        self._requeued = True
        return True
