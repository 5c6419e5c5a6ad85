#!/bin/bash
# model_training_framework default sbatch template (experiment: {{EXPERIMENT_NAME}}).
# Double-brace placeholders are filled by the launcher; values are quoted for you. Directive lines whose value is empty
# (account, partition, qos, constraint, gpus) are dropped.
#SBATCH --job-name={{JOB_NAME}}
#SBATCH --output={{LOG_DIR}}/slurm-%j.out
#SBATCH --error={{LOG_DIR}}/slurm-%j.err
#SBATCH --open-mode=append
#SBATCH --account={{ACCOUNT}}
#SBATCH --partition={{PARTITION}}
#SBATCH --qos={{QOS}}
#SBATCH --constraint={{CONSTRAINT}}
#SBATCH --nodes={{NODES}}
#SBATCH --ntasks-per-node={{NTASKS_PER_NODE}}
#SBATCH --gpus-per-node={{GPUS_PER_NODE}}
#SBATCH --cpus-per-task={{CPUS_PER_TASK}}
#SBATCH --mem={{MEM}}
#SBATCH --time={{TIME}}
# Preemption: SIGUSR1 to the batch shell SIGNAL_GRACE_S seconds before the time limit. One task:
# the training process is exec'd below, so it receives it itself. More tasks: the batch shell
# starts them with srun and forwards the signal; they checkpoint and rank 0 requeues.
#SBATCH --signal=B:USR1@{{SIGNAL_GRACE_S}}
#SBATCH --requeue
{{EXTRA_DIRECTIVES}}

set -euo pipefail
export MTF_EXPERIMENT_NAME={{EXPERIMENT_NAME}}
export MTF_EXPERIMENT_DIR={{EXPERIMENT_DIR}}
export MTF_CODE_VERSION_FILE={{CODE_VERSION_FILE}}
export PYTHONPATH={{CODE_DIR}}${PYTHONPATH:+:$PYTHONPATH}
# Run from the code snapshot taken at submission, never from the live working tree.
cd {{CODE_DIR}}
# The job as squeue, sacct and scancel name it: <array>_<task> for an array task, whose own
# SLURM_JOB_ID is another number (the rule of model_training_framework.slurm_env).
job_id=${SLURM_JOB_ID:-none}
if [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  job_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
fi
echo "[mtf] experiment $MTF_EXPERIMENT_NAME job $job_id restart ${SLURM_RESTART_COUNT:-0} host $(hostname)"
# LAUNCH runs COMMAND ("PYTHON SCRIPT_PATH --config CONFIG_PATH" unless the launcher was given
# another): exec'd for one task in total, through srun for more (nodes x ntasks-per-node).
{{LAUNCH}}
