"""How job scripts start the command: exec for one task, srun (with signals forwarded) for more.

The forwarding is checked with real bash processes and signals, with a stand-in ``srun`` on
PATH that records the signals it gets; the real Slurm runs are in test_multitask_slurm.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from model_training_framework.launch.slurm.launch import EXEC, SRUN, launch_lines, launch_mode
from model_training_framework.launch.slurm.template import (
    SBATCHTemplateEngine,
    ShellCommand,
    ShellLines,
    TemplateError,
)

COMMAND = ShellCommand(["python", "train.py", "--config", "my dir/config.yaml"])

FAKE_SRUN = """#!/bin/bash
# Stand-in for srun: records its arguments and the signals it gets, exits 3 on USR1 or TERM.
on() { echo "signal $1" >> "$MTF_FAKE_LOG"; exit 3; }
trap 'on USR1' USR1
trap 'on TERM' TERM
echo "args $*" >> "$MTF_FAKE_LOG"
while true; do sleep 0.02; done
"""


def test_one_task_keeps_exec_and_more_tasks_use_srun():
    assert launch_mode(1) == EXEC
    assert launch_mode(2) == SRUN
    single = launch_lines(COMMAND, 1).lines
    assert single == (
        "# launch=exec: 1 task in total",
        "exec python train.py --config 'my dir/config.yaml'",
    )
    multi = launch_lines(COMMAND, 4).lines
    assert multi[0].startswith("# launch=srun: 4 tasks in total")
    assert "srun python train.py --config 'my dir/config.yaml' &" in multi
    # The traps are set before srun starts: no moment where the signal would end the shell.
    assert max(i for i, line in enumerate(multi) if line.startswith("trap")) < multi.index(
        "srun python train.py --config 'my dir/config.yaml' &"
    )


def test_a_job_without_tasks_is_an_error():
    with pytest.raises(ValueError, match="at least one task, got 0"):
        launch_mode(0)


def test_shell_lines_must_stand_alone_on_their_line():
    engine = SBATCHTemplateEngine("#!/bin/bash\necho start {{LAUNCH}}\n")
    with pytest.raises(TemplateError, match="must stand alone"):
        engine.render({"LAUNCH": launch_lines(COMMAND, 1)})
    with pytest.raises(TemplateError, match="newline"):
        ShellLines(["a\nb"])


def _start(tmp_path: Path, fake_srun: str = FAKE_SRUN) -> tuple[subprocess.Popen, Path]:
    """Run the 2-task launch lines with ``fake_srun`` as srun; return once srun started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(fake_srun)
    (bin_dir / "srun").chmod(0o755)
    script = tmp_path / "job.sh"
    body = "\n".join(launch_lines(COMMAND, 2).lines)
    script.write_text(f"#!/bin/bash\nset -euo pipefail\n{body}\n")
    log = tmp_path / "srun.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MTF_FAKE_LOG": str(log)}
    proc = subprocess.Popen(["bash", str(script)], env=env)
    deadline = time.monotonic() + 10
    while not (log.exists() and "args" in log.read_text()):
        assert time.monotonic() < deadline, "the stand-in srun never started"
        time.sleep(0.02)
    return proc, log


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_the_batch_shell_forwards_the_signal_to_srun_and_exits_with_its_status(tmp_path, sig):
    proc, log = _start(tmp_path)
    proc.send_signal(sig)  # what --signal=B:USR1 and scancel --batch do
    assert proc.wait(timeout=10) == 3
    text = log.read_text()
    assert "args python train.py --config my dir/config.yaml" in text
    assert f"signal {sig.name.removeprefix('SIG')}" in text


def test_the_batch_shell_outlives_a_forwarded_signal_until_srun_ends(tmp_path):
    # This srun takes a while to stop after USR1 (its tasks write their checkpoint).
    slow_srun = (
        "#!/bin/bash\ntrap 'sleep 0.5; exit 0' USR1\necho args >> \"$MTF_FAKE_LOG\"\n"
        "while true; do sleep 0.02; done\n"
    )
    proc, _ = _start(tmp_path, slow_srun)
    proc.send_signal(signal.SIGUSR1)
    proc.send_signal(signal.SIGUSR1)  # a second signal while srun is stopping
    assert proc.wait(timeout=10) == 0
