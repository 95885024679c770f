"""PEP 517 build backend of rxrisk: setuptools' own, except that building a wheel also needs the
runtime dependencies, because setup.py compiles the kernels into the wheel's shipped cache by
running the commands. Editable installs and sdists need only setuptools (they ship no compiled
kernels), so the quick start does not install numba and pyarrow twice."""

import tomllib
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the rest of the backend, unchanged


def _runtime_dependencies() -> list[str]:
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def get_requires_for_build_wheel(config_settings=None):
    """setuptools' requirements for a wheel, and the runtime dependencies (same ranges, so pip
    picks the numba the wheel will run with)."""
    return [
        *_setuptools.get_requires_for_build_wheel(config_settings),
        *_runtime_dependencies(),
    ]
