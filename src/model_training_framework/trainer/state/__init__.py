"""Checkpoint state: the checkpoint manager, file formats, payload, resume, RNG, code version and run lock."""
