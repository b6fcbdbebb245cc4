"""Packaging beyond pyproject.toml: the experiment files travel inside the package.

``experiments/*.py`` (the folder users read and edit) is installed as ``r1jax/experiments``,
so an installed wheel finds its default experiment (``python -m r1jax.train`` with no
arguments) and every bundled experiment by name (``--config default:smoke``), see
`r1jax.config.experiment_path`. The notebooks under ``experiments/notebooks`` stay out.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["r1jax", "r1jax.*"]), "r1jax.experiments"],
    package_dir={"r1jax.experiments": "experiments"},
)
