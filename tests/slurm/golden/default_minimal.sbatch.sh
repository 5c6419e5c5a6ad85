#!/bin/bash
# model_training_framework default sbatch template (experiment: exp1).
# Double-brace placeholders are filled by the launcher; values are quoted for you. Directive lines whose value is empty
# (account, partition, qos, constraint, gpus) are dropped.
#SBATCH --job-name=exp1
#SBATCH --output=/runs/exp1/logs/slurm-%j.out
#SBATCH --error=/runs/exp1/logs/slurm-%j.err
#SBATCH --open-mode=append
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=01:00:00
# Preemption: SIGUSR1 to the batch shell SIGNAL_GRACE_S seconds before the time limit. One task:
# the training process is exec'd below, so it receives it itself. More tasks: the batch shell
# starts them with srun and forwards the signal; they checkpoint and rank 0 requeues.
#SBATCH --signal=B:USR1@120
#SBATCH --requeue


set -euo pipefail
export MTF_EXPERIMENT_NAME=exp1
export MTF_EXPERIMENT_DIR=/runs/exp1
export MTF_CODE_VERSION_FILE=/runs/exp1/code_version.json
export PYTHONPATH=/runs/.mtf_code/abc/code${PYTHONPATH:+:$PYTHONPATH}
# Run from the code snapshot taken at submission, never from the live working tree.
cd /runs/.mtf_code/abc/code
# The job as squeue, sacct and scancel name it: <array>_<task> for an array task, whose own
# SLURM_JOB_ID is another number (the rule of model_training_framework.slurm_env).
job_id=${SLURM_JOB_ID:-none}
if [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  job_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
fi
echo "[mtf] experiment $MTF_EXPERIMENT_NAME job $job_id restart ${SLURM_RESTART_COUNT:-0} host $(hostname)"
# LAUNCH runs COMMAND ("PYTHON SCRIPT_PATH --config CONFIG_PATH" unless the launcher was given
# another): exec'd for one task in total, through srun for more (nodes x ntasks-per-node).
# launch=exec: 1 task in total
exec /usr/bin/python3 /code/train.py --config /runs/exp1/config.yaml
