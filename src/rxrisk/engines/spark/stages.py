"""The executor side of the Spark engine: the configuration shipped with the tasks, and the
partition functions of stage A (buckets by claim id) and stage B (scoring by member id)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.clock import Clock
from rxrisk.config.rules import RuleSet
from rxrisk.config.settings import Config, load_config, parse_as_of
from rxrisk.engines import local
from rxrisk.engines.spark.read import ROW
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs
from rxrisk.ingest import validate
from rxrisk.ingest.conform import conform_medical, conform_pharmacy
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.intake import Offenders
from rxrisk.scoring.run import set_threads

AUDIT = "_rx_audit"
"""Audit-row column of both stages' output (JSON text; null on data rows)."""
KEY = "_rx_key"  # stage B partition key: trimmed member id (or a spread)
SRC = "_rx_src"  # stage B row kind
ORD = "_rx_ord"  # stage B input ordinal
SRC_PHARMACY, SRC_MEDICAL, SRC_AUDIT = 0, 1, 2
_OUT_CHUNK = 65536


# ------------------------------------------------------------------------ shipped config


@dataclass(frozen=True)
class Shipped:
    """Everything the executors need, carried in the task closure (no driver paths)."""

    key: str
    as_of: tuple[str, ...]
    reference: tuple | None  # ("table", ipc) | ("file", name, bytes) | None
    rules: tuple  # ("rules", json)
    codesets: tuple | None  # ("file", name, bytes) | None
    has_medical: bool
    pharmacy_columns: tuple[str, ...]
    medical_columns: tuple[str, ...]
    output_schema: bytes  # serialized Arrow schema of the stage-B output
    date_format: str | None = None  # explicit format of text dates


def pack_file(path) -> tuple:
    """A file's name and bytes, to ship."""
    p = Path(path)
    return ("file", p.name, p.read_bytes())


def pack_reference(reference) -> tuple | None:
    """The user's reference rows to ship: a Table as Arrow IPC, a path as its file."""
    if reference is None:
        return None
    if isinstance(reference, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, reference.schema) as w:
            w.write_table(reference)
        return ("table", sink.getvalue().to_pybytes())
    return pack_file(reference)


def pack_rules(ruleset) -> tuple:
    """The loaded RuleSet as JSON (exact: msgspec writes floats in shortest round-trip form)."""
    return ("rules", msgspec.json.encode(ruleset))


def _unpack(item):
    """Executor side: the argument to hand to the engine (None, a Table, a RuleSet or a path)."""
    if item is None:
        return None
    if item[0] == "table":
        return pa.ipc.open_stream(pa.py_buffer(item[1])).read_all()
    if item[0] == "rules":
        return msgspec.json.decode(item[1], type=RuleSet)
    _, name, data = item
    folder = Path(tempfile.gettempdir()) / f"rxrisk-spark-{hashlib.sha256(data).hexdigest()[:20]}"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return str(path)


@dataclass(frozen=True)
class _Env:
    config: Config
    days: np.ndarray
    drugs: DrugTable


_ENVS: dict[str, _Env] = {}


def _env(cfg: Shipped) -> _Env:
    """Executor side, once per Python worker and configuration."""
    env = _ENVS.get(cfg.key)
    if env is None:
        reference, rules, codesets = map(_unpack, (cfg.reference, cfg.rules, cfg.codesets))
        config = load_config(reference=reference, rules=rules, codesets=codesets)
        env = _Env(
            config=config,
            days=parse_as_of(list(cfg.as_of)),
            drugs=DrugTable.from_reference(config.reference),
        )
        _ENVS[cfg.key] = env
    return env


# --------------------------------------------------------------------- partition functions


def _read_partition(batches) -> pa.Table | None:
    batches = list(batches)
    if not batches:
        return None
    table = pa.Table.from_batches(batches)
    return table if table.num_rows else None


def _audit_row(schema: pa.Schema, text: str, row: int | None = None) -> pa.RecordBatch:
    cols = []
    for f in schema:
        if f.name == AUDIT:
            cols.append(pa.array([text], f.type))
        elif f.name == ROW and row is not None:
            cols.append(pa.array([row], f.type))
        else:
            cols.append(pa.nulls(1, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def stage_a(cfg: Shipped, batches):
    """Buckets of one claim-id partition: yield its used rows and one audit row."""
    table = _read_partition(batches)
    if table is None:
        return
    t0 = time.perf_counter()
    env = _env(cfg)
    src = inputs.Source(table.drop_columns([ROW]), "pharmacy")
    cols = conform_pharmacy(src, date_format=cfg.date_format)
    max_days_supply = env.config.metrics.max_days_supply
    rows = validate.validate_pharmacy(cols, env.drugs, max_days_supply=max_days_supply)
    used = np.flatnonzero(rows.bucket == validate.PHARMACY_BUCKETS.index("used"))
    out = table.take(pa.array(used, pa.int64()))
    out = out.append_column(AUDIT, pa.nulls(out.num_rows, pa.string()))
    yield from out.to_batches(max_chunksize=_OUT_CHUNK)
    first = int(pc.min(table.column(ROW)).as_py())
    offenders = Offenders()
    offenders.add(
        "pharmacy",
        src.table,
        rows.reason,
        validate.PHARMACY_REASONS,
        row_numbers=table.column(ROW).to_numpy(),
    )
    report = {
        "pharmacy": rows.counts(),
        "offenders": offenders.of("pharmacy"),
        "seconds": time.perf_counter() - t0,
    }
    # The audit row's ordinal is negative and unique per partition (it spreads audit rows).
    yield _audit_row(out.schema, json.dumps(report), row=-1 - first)


def _split_partition(cfg: Shipped, table: pa.Table):
    """A stage-B partition's stage-A reports, pharmacy rows, medical rows (or None) and the
    medical rows' input ordinals."""
    src = table.column(SRC)
    reports = [json.loads(t) for t in table.filter(pc.equal(src, SRC_AUDIT))[AUDIT].to_pylist()]
    ph = table.filter(pc.equal(src, SRC_PHARMACY))
    ph = ph.select([f"p__{c}" for c in cfg.pharmacy_columns]).rename_columns(cfg.pharmacy_columns)
    md = md_order = None
    if cfg.has_medical:
        md = table.filter(pc.equal(src, SRC_MEDICAL))
        md_order = md.column(ORD).to_numpy()  # input order, for the offending values
        md = md.select([f"m__{c}" for c in cfg.medical_columns]).rename_columns(cfg.medical_columns)
    return reports, ph, md, md_order


def stage_b(cfg: Shipped, batches):
    """Score one member partition with the in-process engine: members, then one audit row."""
    table = _read_partition(batches)
    if table is None:
        return
    t0 = time.perf_counter()
    schema = pa.ipc.read_schema(pa.py_buffer(cfg.output_schema))
    stage_a_reports, ph, md, md_order = _split_partition(cfg, table)
    report: dict = {"stage_a": stage_a_reports}
    del table
    if ph.num_rows or (md is not None and md.num_rows):
        env = _env(cfg)
        set_threads(1)
        setup = local.Setup(
            config=env.config,
            days=env.days,
            clock=Clock(),
            threads=1,
            date_format=cfg.date_format,
            max_reject_share=1.0,  # the driver decides on the summed counts
        )
        try:
            scored = local.score_book(ph, md, setup)
        except InputError as exc:
            report["error"] = str(exc)
        else:
            members = scored.members
            if members.num_rows:
                members = members.cast(pa.schema([f for f in schema if f.name != AUDIT]))
                members = members.append_column(AUDIT, pa.nulls(members.num_rows, pa.string()))
                yield from members.to_batches(max_chunksize=_OUT_CHUNK)
            a = local.audit_of(scored, setup)
            report.update(
                medical=a["medical"],
                used_pharmacy=a["pharmacy"]["buckets"]["used"],
                members_scored=a["members_scored"],
                rows_out=a["rows_out"],
                config_digest=a["config_digest"],
            )
            if md is not None and any(a["medical"]["rejected_by_reason"].values()):
                report["offenders"] = _medical_offenders(cfg, env, md, md_order)
    report["seconds"] = time.perf_counter() - t0
    yield _audit_row(schema, json.dumps(report))


def _medical_offenders(cfg: Shipped, env: _Env, md: pa.Table, order: np.ndarray) -> dict:
    """Offending values of the rejected medical rows of a partition (only run when it has
    some; ``order``: each row's input position): ``{reason: [[row, shown], ...]}``."""
    cols = conform_medical(inputs.Source(md, "medical"), date_format=cfg.date_format)
    rows = validate.validate_medical(cols, env.config.codesets)
    offenders = Offenders()
    offenders.add("medical", md, rows.reason, validate.MEDICAL_REASONS, row_numbers=order)
    return offenders.of("medical")
