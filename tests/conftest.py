"""Root conftest: plugins whose fixtures every test package may use, and signal hygiene.

``tests.slurm_plugin`` provides ``slurm_cluster`` (a real single-node Slurm, session scope).
"""

from __future__ import annotations

import io
import signal
import threading

import pytest

pytest_plugins = ["tests.slurm_plugin"]


@pytest.fixture(autouse=True)
def _default_sigint_handler():
    """Give every test Python's usual SIGINT handler.

    A shell that starts pytest as a background job (CI runners may) sets SIGINT to "ignore", and
    the trainer deliberately keeps an ignored SIGINT ignored; tests of the Ctrl-C path need the
    interactive default.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _FailingStream(io.StringIO):
    """A text stream whose every write fails with ``error`` (e.g. a pipe whose reader quit)."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise self.error


@pytest.fixture
def failing_stream() -> type[_FailingStream]:
    """Make a stream whose writes fail: ``failing_stream(BrokenPipeError(32, "Broken pipe"))``."""
    return _FailingStream
