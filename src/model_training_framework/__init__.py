"""model_training_framework: fault-tolerant multi-dataloader training, sweeps and SLURM."""

__version__ = "0.1.0"
