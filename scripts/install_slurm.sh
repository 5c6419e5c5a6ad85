#!/usr/bin/env bash
# Install a local Slurm (controller + node) and munge for the `-m slurm` tests. Idempotent:
# a quick no-op when they are already installed. Debian/Ubuntu, run as root (CI).
set -euo pipefail
if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
   && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
  echo "slurm-wlm and munge already installed"; exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge
