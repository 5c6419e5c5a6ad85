"""Stand-in for a training script: records each run, handles SIGUSR1 by requeueing.

Writes ``<experiment dir>/ran_<SLURM_RESTART_COUNT>`` (content: the --config path). When
TINY_JOB_WAIT_FOR_SIGNAL=1 and this is the first run, it writes ``ready`` and waits; on
SIGUSR1 it writes ``got_usr1``, runs ``scontrol requeue $SLURM_JOB_ID`` and exits 0.
"""

import argparse
import os
import pathlib
import signal
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
args = parser.parse_args()
experiment_dir = pathlib.Path(os.environ["MTF_EXPERIMENT_DIR"])
restart = os.environ.get("SLURM_RESTART_COUNT", "0")
(experiment_dir / f"ran_{restart}").write_text(args.config)


def on_usr1(signum, frame):
    (experiment_dir / "got_usr1").write_text(restart)
    subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=True)
    raise SystemExit(0)


signal.signal(signal.SIGUSR1, on_usr1)
if os.environ.get("TINY_JOB_WAIT_FOR_SIGNAL") == "1" and restart == "0":
    (experiment_dir / "ready").write_text(os.environ["SLURM_JOB_ID"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
    raise SystemExit(3)  # no signal came
