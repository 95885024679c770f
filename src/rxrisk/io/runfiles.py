"""The files a run owns while it works, and the clean-up of those a killed run left behind.

A run writes each output to a temporary name in the output's folder and renames it when the
run's outputs are complete; the streaming path spills to folders of Arrow IPC files. An
interrupted run (an error, SIGINT, SIGTERM) removes these itself. A killed run (SIGKILL, a
power cut) cannot, so every such name carries its owner::

    .members.parquet.rxrisk-<host>-<pid>-<start>-<n>.tmp      temporary output
    rxrisk-spill-<host>-<pid>-<start>-<n>-<store>/            spill folder

``<host>`` is a digest of the host name and the PID namespace, ``<pid>`` the owner's process
id, ``<start>`` its start time (clock ticks since boot, from ``/proc``; 0 where unknown) and
``<n>`` a counter. The next run that uses the same folder removes such a name only when it
proves the owner dead: same host token, and the process id is gone, is a zombie, or belongs to
a process started at another time (the id was reused). Anything else, including a leftover of
another machine or container, is never touched. Inside a leftover folder only the files the
tool writes there (``part-N.parquet``, ``<store>-N.arrow``) are removed; a folder holding
anything else is left as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import socket
from pathlib import Path

_OWNER = r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-\d+"
_TEMP = re.compile(rf"^\.(?P<final>.+)\.rxrisk-{_OWNER}\.(?:tmp|old)$")
_SPILL = re.compile(rf"^rxrisk-spill-{_OWNER}-(?P<store>[A-Za-z0-9_]+)$")
_PART = re.compile(r"^part-\d+\.parquet$")
_counter = itertools.count()
_cache: dict[str, str] = {}


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from ``/proc/<pid>/stat``; None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return fields[0].decode(), fields[19].decode()
    except (OSError, ValueError, IndexError):
        return None


def _host() -> str:
    """8 hex digits naming this host and PID namespace (a process id means nothing elsewhere)."""
    if "host" not in _cache:
        try:
            ns = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            ns = ""
        key = f"{socket.gethostname()}\0{ns}".encode()
        _cache["host"] = hashlib.sha1(key, usedforsecurity=False).hexdigest()[:8]
    return _cache["host"]


def owner() -> str:
    """``<host>-<pid>-<start>`` of this process."""
    pid = os.getpid()
    key = f"owner-{pid}"
    if key not in _cache:
        stat = _proc_stat(pid)
        _cache[key] = f"{_host()}-{pid}-{stat[1] if stat else 0}"
    return _cache[key]


def temp_name(final_name: str, kind: str = "tmp") -> str:
    """A name, unique in this process, for a temporary stand-in of ``final_name``."""
    return f".{final_name}.rxrisk-{owner()}-{next(_counter)}.{kind}"


def spill_name(store: str) -> str:
    """A name, unique in this process, for a spill folder of the store ``store``."""
    return f"rxrisk-spill-{owner()}-{next(_counter)}-{store}"


def owner_is_dead(host: str, pid: str, start: str) -> bool:
    """True only when the process that made a name is provably gone."""
    if os.name != "posix":
        return False  # no safe liveness probe (os.kill would end the process on Windows)
    if host != _host():
        return False  # another machine or container: its process ids mean nothing here
    pid_n = int(pid)
    if pid_n <= 0:
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return False
    stat = _proc_stat(pid_n)
    if stat is None:
        return False
    state, now = stat
    if state == "Z":
        return True  # killed, not yet reaped: it writes nothing more
    return start != "0" and now != start  # the id now belongs to a later process


def _remove_folder(folder: Path, keep: re.Pattern) -> bool:
    """Remove the files of ``folder`` whose names match ``keep``, then the folder if empty."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    for e in entries:
        if keep.match(e.name) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
    try:
        os.rmdir(folder)
    except OSError:
        return False
    return True


def sweep_outputs(folder) -> list[Path]:
    """Remove the temporary outputs of dead runs from ``folder``; return what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if m is None or not owner_is_dead(m["host"], m["pid"], m["start"]):
            continue
        path = Path(e.path)
        if e.is_dir(follow_symlinks=False):
            if _remove_folder(path, _PART):
                removed.append(path)
        elif e.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed


def sweep_spill(root) -> list[Path]:
    """Remove the spill folders of dead runs from ``root``; return what was removed."""
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for e in entries:
        m = _SPILL.match(e.name)
        if m is None or not e.is_dir(follow_symlinks=False):
            continue
        if owner_is_dead(m["host"], m["pid"], m["start"]):
            store = re.compile(rf"^{re.escape(m['store'])}-\d+\.arrow$")
            if _remove_folder(Path(e.path), store):
                removed.append(Path(e.path))
    return removed
