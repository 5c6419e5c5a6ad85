"""Root conftest: plugins whose fixtures every test package may use.

``tests.slurm_plugin`` provides ``slurm_cluster`` (a real single-node Slurm, session scope).
"""

pytest_plugins = ["tests.slurm_plugin"]
