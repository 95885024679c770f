"""The quarantine table, output path checks and the writers that commit a run's outputs
together (the member table is assembled in ``rxrisk.scoring.columns``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from rxrisk.errors import InputError
from rxrisk.io.arrow import take_rows
from rxrisk.io.runfiles import sweep_outputs, temp_name


def quarantine_table(
    parts: list[tuple[str, pa.Table, np.ndarray, np.ndarray, tuple[str, ...]]],
) -> pa.Table:
    """Rejected rows as read, with ``source``, ``row_number`` (1-based) and ``reject_reason``.

    ``parts`` holds (source label, raw table, row indices, reason codes, reason names) and
    optionally the 0-based input row numbers of those rows when ``raw`` is not the whole input
    (streaming keeps only each batch's rejected rows). Columns of all parts are unioned; a
    column whose types differ is written as text.
    """
    tables = []
    for label, raw, rows, reason, reason_names, *row_numbers in parts:
        numbers = row_numbers[0] if row_numbers else rows
        taken = pa.table({name: take_rows(raw.column(name), rows) for name in raw.column_names})
        head = pa.table(
            {
                "source": pa.array([label] * len(rows), pa.string()),
                "row_number": pa.array(numbers + 1, pa.int64()),
                "reject_reason": pa.array(reason_names, pa.string()).take(
                    pa.array(reason.astype(np.int32))
                ),
            }
        )
        for name in taken.column_names:
            head = head.append_column(name, taken.column(name))
        tables.append(head)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = [
            t.cast(
                pa.schema(
                    [pa.field(f.name, pa.string()) if i >= 3 else f for i, f in enumerate(t.schema)]
                )
            )
            for t in tables
        ]
        return pa.concat_tables(texts, promote_options="permissive")


# ------------------------------------------------------------------------------------ writers

_FORMATS = (".parquet", ".csv", ".arrow")


def check_output_path(path, what: str = "--out", *, formats: bool | None = None) -> Path:
    """Check an output file before any work: known extension (unless ``formats`` is False;
    default: every option but ``--audit``), not a folder, in an existing folder this process
    can write to. Raise :class:`InputError` otherwise."""
    p = Path(path)
    if formats is None:
        formats = what != "--audit"
    if formats and p.suffix.lower() not in _FORMATS:
        raise InputError(
            f"{what} {p}: unknown extension '{p.suffix}'; use one of {', '.join(_FORMATS)}"
        )
    check_target(p, what)
    return p


def check_target(path, what: str = "--out", *, folder: bool = False, parents: bool = False) -> None:
    """Check that ``path`` can be written (a file, or with ``folder`` a folder made or filled
    by the run): it is not the other kind of thing, and its parent is an existing folder in
    which a file can be created (tried with a temporary file of the tool's own naming, so this
    holds for root and read-only file systems too). With ``parents`` (a folder the run makes
    with its missing parents) the nearest existing ancestor is the one that must be writable."""
    p = Path(path)
    if p.is_dir() and not folder:
        raise InputError(f"{what} {p}: is a folder; give a file name")
    if folder and p.exists() and not p.is_dir():
        raise InputError(f"{what} {p}: is a file; give a folder")
    if folder and p.is_dir():
        check_writable(p, what, p)
        return
    parent = p.parent
    if parents:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise InputError(f"{what} {p}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise InputError(f"{what} {p}: {parent} is not a folder")
    check_writable(parent, what, p)


def check_writable(folder, what: str, shown=None) -> None:
    """Create and remove a temporary file in ``folder``; a failure is an :class:`InputError`."""
    probe = Path(folder) / temp_name("probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"{what} {shown if shown is not None else folder}: cannot write in {folder} "
            f"({reason}); choose another folder"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _is_path(x) -> bool:
    return isinstance(x, str | os.PathLike) and str(x) != ""


class _Where:
    """A path as given, its resolved form (symlinks, ``..``, the working folder) and, when it
    exists, its (device, inode)."""

    def __init__(self, label: str, path):
        self.label = label
        self.path = Path(path)
        self.real = Path(os.path.realpath(path))
        try:
            st = os.stat(self.real)
        except OSError:
            st = None
        self.id = (st.st_dev, st.st_ino) if st is not None else None
        self.is_dir = st is not None and stat.S_ISDIR(st.st_mode)

    def same(self, other: _Where) -> bool:
        return self.real == other.real or (self.id is not None and self.id == other.id)

    def inside(self, folder: _Where) -> bool:
        """True when this path is strictly inside ``folder`` (by name or, for bind mounts and
        links to folders, by the (device, inode) of one of its parents)."""
        if not folder.is_dir or self.same(folder):
            return False
        if self.real.is_relative_to(folder.real):
            return True
        for parent in self.real.parents:
            try:
                st = os.stat(parent)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == folder.id:
                return True
        return False


def check_collisions(inputs, outputs, folders=()) -> None:
    """Refuse a run whose outputs would overwrite its inputs or each other, before anything is
    read.

    Parameters
    ----------
    inputs : iterable of (label, path or None)
        The run's input files and folders (a Parquet folder included), labelled as the user
        gave them (``"PHARMACY"``, ``"--medical"``...). Entries that are not paths (tables,
        None) are skipped.
    outputs : iterable of (label, path or None)
        The files the run writes.
    folders : iterable of (label, path)
        Folders whose whole content the run writes or replaces (an input inside one is refused).

    Raises
    ------
    InputError
        One line naming both options and the path: an output that is an input or another
        output (the same file after resolving symlinks and relative paths, or a hard link to
        it), an output inside an input folder, or an input inside a folder the run writes.
    """
    ins = [_Where(label, p) for label, p in inputs if _is_path(p)]
    outs = [_Where(label, p) for label, p in outputs if _is_path(p)]
    trees = [_Where(label, p) for label, p in folders if _is_path(p)]
    for i, o in enumerate(outs):
        for x in ins:
            if o.same(x):
                raise InputError(
                    f"{o.label} {o.path} and {x.label} {x.path} are the same file: the output "
                    f"would overwrite the input; choose another {o.label}"
                )
            if o.inside(x):
                raise InputError(
                    f"{o.label} {o.path} is inside the {x.label} folder {x.path}: the output "
                    f"would become part of the input; write it elsewhere"
                )
        for y in outs[:i]:
            if o.same(y):
                raise InputError(
                    f"{o.label} {o.path} and {y.label} {y.path} are the same file; give each "
                    "output its own path"
                )
    for t in trees:
        for x in [*ins, *outs]:
            if x.same(t) or x.inside(t) or (x in ins and t.inside(x)):
                kind = "input" if x in ins else "output"
                raise InputError(
                    f"{x.label} {x.path} is in the {t.label} folder {t.path}, which this run "
                    f"writes: the {kind} would be overwritten; choose another {t.label}"
                )


def prepare_outputs(inputs, outputs) -> list[Path | None]:
    """Everything a command checks about its output files before it reads anything: no output
    is an input or another output (:func:`check_collisions`), each has a known extension (but
    ``--audit``) and can be written (:func:`check_output_path`); then the temporary outputs of
    killed runs are removed from their folders (:func:`sweep_leftovers`).

    Parameters
    ----------
    inputs, outputs : iterables of (label, path or None)
        As for :func:`check_collisions`.

    Returns
    -------
    list
        The output paths as :class:`~pathlib.Path` (None where none was given), in order.
    """
    outputs = list(outputs)
    check_collisions(inputs, outputs)
    paths = [check_output_path(p, label) if _is_path(p) else None for label, p in outputs]
    sweep_leftovers(*paths)
    return paths


def sweep_leftovers(*paths) -> None:
    """Remove, from the folders of these output paths, the temporary outputs of runs that were
    killed (see :mod:`rxrisk.io.runfiles`: only names that embed a dead owner)."""
    seen = set()
    for p in paths:
        if not _is_path(p):
            continue
        folder = os.path.realpath(Path(p).parent)
        if folder not in seen:
            seen.add(folder)
            sweep_outputs(folder)


def _write_table_file(table: pa.Table, path: Path, ext: str) -> None:
    if ext == ".parquet":
        pq.write_table(table, path, compression="zstd")
    elif ext == ".csv":
        pacsv.write_csv(_csv_ready(table), path)
    elif ext == ".arrow":
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
    else:  # guarded by check_output_path
        raise InputError(f"{path}: unknown extension '{ext}'; use one of {', '.join(_FORMATS)}")


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM (delivered when the block ends) while outputs are renamed, so an
    interrupt cannot land between two renames of one run."""
    if not hasattr(signal, "pthread_sigmask") or (
        threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


committed_runs = 0  # commits completed in this process (the CLI words an interrupt with it)


class Commit:
    """The outputs of one run, committed together.

    Each output is written to a temporary name in its own folder (named after this process,
    see :mod:`rxrisk.io.runfiles`) as the run produces it; :meth:`commit` renames them all into
    place once every one was written. Used as a context manager, it commits when the block ends
    normally and removes every temporary file (and every folder it made that is still empty)
    when the block raises, KeyboardInterrupt and the CLI's SIGTERM included::

        with Commit() as run:
            run.table(members, out)
            run.json(audit, audit_path)
        # both are in place, or neither is

    Existing files at the final paths are replaced only by the commit.
    """

    def __init__(self):
        self._pending: list[tuple[Path, Path]] = []
        self._made: list[Path] = []
        self.done = False

    def folder(self, path) -> Path:
        """Make the folder ``path`` if missing (removed again when the run fails while empty)."""
        path = Path(path)
        if not path.is_dir():
            path.mkdir()
            self._made.append(path)
        return path

    def temp(self, final) -> Path:
        """Reserve (create, empty) a temporary file to be renamed onto ``final``."""
        final = Path(final)
        tmp = final.parent / temp_name(final.name)
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # umask applies
        os.close(fd)
        self._pending.append((tmp, final))
        return tmp

    def table(self, table: pa.Table, final) -> None:
        """Write ``table`` for ``final``; the format follows its extension."""
        final = Path(final)
        _write_table_file(table, self.temp(final), final.suffix.lower())

    def json(self, obj, final) -> None:
        """Write ``obj`` as JSON for ``final`` (keys in their given order)."""
        self.temp(final).write_text(json.dumps(obj, indent=2) + "\n")

    def text(self, text: str, final) -> None:
        """Write UTF-8 ``text`` for ``final``."""
        self.temp(final).write_text(text, encoding="utf-8")

    def commit(self) -> None:
        """Rename every temporary file onto its final path."""
        global committed_runs
        with _signals_held():
            for tmp, final in self._pending:
                os.replace(tmp, final)
            self._pending.clear()
            self._made.clear()
            self.done = True
            committed_runs += 1

    def discard(self) -> None:
        """Remove every temporary file, and the folders this run made when they are empty."""
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pending.clear()
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                path.rmdir()
        self._made.clear()

    def __enter__(self) -> Commit:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target folder; rename it onto ``path`` on success."""
    with Commit() as run:
        yield run.temp(path)


def _csv_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column CSV cannot hold as text: binary as hex, nested values as JSON (null stays
    null). Only the quarantine meets these (extra input columns kept as read)."""
    import json

    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        values = [None if v is None else v.hex() for v in col.to_pylist()]
    else:
        values = [
            None if v is None else json.dumps(v, default=str, ensure_ascii=False)
            for v in col.to_pylist()
        ]
    return pa.chunked_array([pa.array(values, pa.string())])


def _csv_writable(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _csv_writable(t.value_type)
    return not (
        pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or getattr(pa.types, "is_binary_view", lambda _: False)(t)
    )


def _csv_ready(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        if pa.types.is_list(col.type) and pa.types.is_string(col.type.value_type):
            cols.append(pc.binary_join(col, ";"))  # the member table's reasons
        elif not _csv_writable(col.type):
            cols.append(_csv_text(col))
        else:
            cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def write_table(table: pa.Table, path) -> None:
    """Write a table atomically; the format follows the extension (.parquet, .csv, .arrow)."""
    with Commit() as run:
        run.table(table, path)


def write_json(obj, path) -> None:
    """Write JSON atomically (sorted keys are not used: the audit keeps its documented order)."""
    with Commit() as run:
        run.json(obj, path)
