"""Experiments: the experiment config, sweeps, grid YAML, the config manager and the job entry point."""
