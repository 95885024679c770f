"""Build hook: after the sources are copied into the build folder, compile every numba kernel
into the package's shipped cache (``rxrisk compile --shipped``), so that a fresh install, even a
read-only one, starts without compiling. The project's metadata is in pyproject.toml.

Set ``RXRISK_SKIP_KERNEL_CACHE=1`` to build a wheel without it (kernels then compile on first
use). Editable installs never build it: they save compiled kernels to the user cache folder.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernelCache(build_py):
    """``build_py`` that also fills ``rxrisk/kernels/_cache`` in the build folder."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("RXRISK_SKIP_KERNEL_CACHE"):
            return
        build_lib = os.path.abspath(self.build_lib)
        # a build folder left by an earlier build may hold kernels of older sources: start empty
        shutil.rmtree(os.path.join(build_lib, "rxrisk", "kernels", "_cache"), ignore_errors=True)
        # the build folder first, then what the build environment put on the path (its numba)
        path = [build_lib, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        env.pop("NUMBA_DISABLE_JIT", None)
        print("compiling the kernels into the shipped cache (about a minute)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "rxrisk.cli", "compile", "--shipped", "--quiet"],
            env=env,
            cwd=build_lib,
            check=True,
        )


setup(cmdclass={"build_py": BuildPyWithKernelCache})
