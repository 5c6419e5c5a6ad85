"""Launchers: run experiments locally (:mod:`.local`) or on Slurm (:mod:`.slurm`)."""
