"""The kernel cache (kernels/_jit.py, kernels/_cache_files.py): kernels compiled into the shipped
folder are loaded, not compiled, from a fresh user cache and from a read-only install; what is
compiled at run time is saved to the user folder only; an index is used only with the stamp of
every kernel source."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from rxrisk.kernels import _cache_files as cache_files

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="nothing compiles"
)


def add_one(x):
    return x + 1


def _kernel(jit):
    """A fresh dispatcher of ``add_one`` (as a kernel module's decorator makes one)."""
    return jit.ngjit(add_one)


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def jit(tmp_path, monkeypatch):
    """The kernel decorator, and the kernel cache module (its folders and stamp to patch)."""
    from rxrisk.kernels import _jit, _kernel_cache

    monkeypatch.setattr(_kernel_cache, "SHIPPED_DIR", tmp_path / "shipped")
    return types.SimpleNamespace(ngjit=_jit.ngjit, cache=_kernel_cache)


def test_shipped_cache_is_loaded_not_compiled(jit, tmp_path, monkeypatch):
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    monkeypatch.setattr(jit.cache, "SAVE_DIR", shipped)  # rxrisk compile --shipped
    built = _kernel(jit)
    assert built(1) == 2
    assert sum(built.dispatcher.stats.cache_misses.values()) == 1
    names = _files(shipped)
    assert any(n.endswith(".nbi") for n in names) and any(n.endswith(".nbc") for n in names)

    monkeypatch.setattr(jit.cache, "SAVE_DIR", user)  # a fresh install with an empty user cache
    fresh = _kernel(jit)
    assert fresh(41) == 42
    assert sum(fresh.dispatcher.stats.cache_hits.values()) == 1 and not any(
        fresh.dispatcher.stats.cache_misses.values()
    )
    assert _files(user) == []  # loaded: nothing compiled, nothing saved

    monkeypatch.setattr(jit.cache, "SAVE_DIR", None)  # a read-only install: no writable folder
    read_only = _kernel(jit)
    assert read_only(1) == 2 and sum(read_only.dispatcher.stats.cache_hits.values()) == 1
    assert read_only(1.5) == 2.5  # another signature compiles in memory; nothing is written
    assert sum(read_only.dispatcher.stats.cache_misses.values()) == 1
    assert _files(shipped) == names

    monkeypatch.setattr(jit.cache, "SAVE_DIR", user)
    grown = _kernel(jit)
    assert grown(1.5) == 2.5 and sum(grown.dispatcher.stats.cache_misses.values()) == 1
    assert any(n.endswith(".nbi") for n in _files(user))  # saved to the user folder only
    assert _files(shipped) == names
    again = _kernel(jit)
    assert again(1.5) == 2.5 and again(1) == 2
    assert sum(again.dispatcher.stats.cache_hits.values()) == 2  # user folder, then shipped


def test_index_of_other_kernel_sources_is_not_used(jit, tmp_path, monkeypatch):
    """A helper edited in another kernel file changes the stamp of every index."""
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(jit.cache, "SAVE_DIR", shipped)
    assert _kernel(jit)(1) == 2
    monkeypatch.setattr(jit.cache, "SAVE_DIR", None)
    monkeypatch.setattr(jit.cache, "source_stamp", lambda: b"other kernel sources")
    stale = _kernel(jit)
    assert stale(1) == 2
    assert sum(stale.dispatcher.stats.cache_misses.values()) == 1 and not any(
        stale.dispatcher.stats.cache_hits.values()
    )


def test_stamp_covers_every_kernel_source(tmp_path, monkeypatch):
    before = cache_files.source_stamp()
    copy = tmp_path / "kernels"
    copy.mkdir()
    for path in cache_files.KERNELS_DIR.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(cache_files, "KERNELS_DIR", copy)
    cache_files.source_stamp.cache_clear()
    try:
        assert cache_files.source_stamp() == before  # the same bytes, another folder
        with open(copy / "layout.py", "a") as f:  # a helper file, not the kernel's own
            f.write("\n# edited\n")
        cache_files.source_stamp.cache_clear()
        assert cache_files.source_stamp() != before
    finally:
        cache_files.source_stamp.cache_clear()


def test_save_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(cache_files.BUILD_ENV, raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_files.save_dir() == cache_files.user_cache_dir()
    assert str(cache_files.save_dir()).startswith(str(tmp_path / "cache" / "kernels_"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/proc/no-such-cache")
    assert cache_files.save_dir() is None
    monkeypatch.setattr(cache_files, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv(cache_files.BUILD_ENV, "1")
    assert cache_files.save_dir() == tmp_path / "shipped"


def _compile(cache: str, cwd, **extra_env: str) -> subprocess.CompletedProcess:
    """``rxrisk compile`` in a child with ``NUMBA_CACHE_DIR=cache`` (and ``extra_env``)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, **extra_env)
    env.pop(cache_files.BUILD_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "rxrisk.cli", "compile"],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=1800,
    )


def test_compile_refuses_a_folder_it_cannot_write(tmp_path):
    done = _compile("/proc/no-such-cache", tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "NUMBA_CACHE_DIR" in lines[0]


def test_compile_says_so_when_jit_is_disabled(tmp_path):
    done = _compile(str(tmp_path / "cache"), tmp_path, NUMBA_DISABLE_JIT="1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NUMBA_DISABLE_JIT" in lines[0] and "nothing to compile" in lines[0]
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_compile_caches_every_kernel_of_every_command(tmp_path):
    """``rxrisk compile`` leaves nothing to compile for any command (what ``--shipped`` does for
    a wheel build, into the user folder here)."""
    if any(cache_files.SHIPPED_DIR.glob("*.nbi")):  # it would load them and compile nothing
        pytest.skip(f"{cache_files.SHIPPED_DIR} holds a shipped kernel cache")
    done = _compile(str(tmp_path / "cache"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "every kernel is compiled and cached" in done.stderr.splitlines()[-1]
    check = (  # the user folder alone must hold every module's kernels
        "from pathlib import Path\n"
        "from rxrisk.cli import progress\n"
        "from rxrisk.kernels import _cache_files\n"
        "_cache_files.SHIPPED_DIR = Path('/nonexistent')\n"
        "for command in progress.COMMAND_KERNELS:\n"
        "    assert progress.kernels_to_compile(command) == [], command\n"
        "from importlib.metadata import version\n"  # the sort of a million keys or more
        "assert _cache_files.cached_modules(('sorting',), version('numba')) == {'sorting'}\n"
        "print('none to compile')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == "none to compile", done.stderr


_CHILD = """
import sys
import numpy as np
from rxrisk.kernels._jit import ngjit

@ngjit
def running_total(x):
    out = np.empty(x.size, np.int64)  # allocates: the loaded code calls numba's runtime
    s = 0
    for i in range(x.size):
        s += x[i]
        out[i] = s
    return out

assert running_total(np.arange(5, dtype=np.int64)).tolist() == [0, 1, 3, 6, 10]
hits = sum(running_total.dispatcher.stats.cache_hits.values())
refreshed = "numba.np.linalg" in sys.modules  # imported by a full target-context refresh
assert running_total(np.arange(3, dtype=np.int32)).tolist() == [0, 1, 3]  # compiles here
print(hits, int(refreshed), sum(running_total.dispatcher.stats.cache_misses.values()))
"""


def test_loading_a_kernel_does_not_refresh_numba(tmp_path):
    """A cached kernel is loaded without refreshing numba's whole target context (which imports
    every typing and lowering module numba has, about 0.2 s of each command's start); a kernel
    compiled afterwards in the same process still compiles and runs."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop(cache_files.BUILD_ENV, None)

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert run() == ["0", "1", "2"]  # the first run compiles both signatures (a refresh)
    assert run() == ["1", "0", "0"]  # the second loads both, and never refreshes
