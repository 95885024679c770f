"""The floor of ``rxrisk score`` as a command: a process that reads both inputs the way the
command's streaming engine reads them, and does nothing else (or, with ``--select``, the least
any engine reading them this way must also do).

It readies its process as the command does (OpenBLAS's threads, numpy's huge pages, the
allocator picked for the book's size), opens each input with the engine's own batch reader (the columns the engine
reads, the text columns it reads as dictionaries, its batch size) and pulls every batch, one
input after the other. No row is checked, kept or scored and nothing is written, so its time
is what the command would take if everything but reading were free: ``bench_pair.py
--floor`` runs it with an install's Python, round by round beside the read and the commands,
to show how much of a command's time is the read and how much is the engine's own work.

With ``--select`` it also finds and keeps the rows the engine goes on with, with the engine's
own code: each pharmacy batch's NDCs looked up in the drug reference (the distinct texts of a
batch, remembered across batches, as the command does) and the rows of tracked NDCs taken out
of every column and kept; each medical batch's codes classified and the classified rows'
member id, service date and categories taken and kept. Nothing else: no check of a tracked
row, no claim-id matching, no scoring, no output. Reading cannot be narrowed to the tracked
rows: pyarrow's Parquet reader decodes whole pages and cannot skip rows, so every untracked
row's columns are decoded before the row can be set aside. ``bench_pair.py --select-floor``
runs it.

    python bench/scan_floor.py BOOK/pharmacy.parquet BOOK/medical.parquet [--select]

Prints one line of JSON: rows read per input, rows kept per input (``--select``) and seconds
from opening the first input to the last batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pharmacy")
    p.add_argument("medical")
    p.add_argument(
        "--select", action="store_true", help="also find and keep the tracked rows (see above)"
    )
    args = p.parse_args(argv)

    from rxrisk.cli.allocator import pick_allocator
    from rxrisk.cli.main import no_numpy_hugepage_advice, one_blas_thread

    one_blas_thread()  # before numpy, as the command does
    no_numpy_hugepage_advice()
    pick_allocator(argparse.Namespace(**vars(args), partitions=None, memory_budget=None))

    from rxrisk.engines.batches import engine_columns, open_batches
    from rxrisk.engines.stream import STREAM_DICTIONARY_COLUMNS, StreamOptions
    from rxrisk.ingest.sources import MEDICAL_REQUIRED, PHARMACY_OPTIONAL, PHARMACY_REQUIRED

    inputs = (
        ("pharmacy", args.pharmacy, engine_columns(PHARMACY_REQUIRED, PHARMACY_OPTIONAL)),
        ("medical", args.medical, engine_columns(MEDICAL_REQUIRED, ())),
    )
    select = _selection() if args.select else None
    t = time.perf_counter()
    rows, kept = {}, {}
    for label, path, columns in inputs:
        src = open_batches(
            path,
            label=label,
            batch_rows=StreamOptions.batch_rows,
            columns=columns,
            dictionary_columns=STREAM_DICTIONARY_COLUMNS,
        )
        rows[label] = kept[label] = 0
        for batch in src.batches:
            rows[label] += batch.num_rows
            if select is not None:
                kept[label] += select[label](batch, src.name)
    result = {"rows": rows, "scan_s": round(time.perf_counter() - t, 3)}
    if select is not None:
        result["kept"] = kept
    print(json.dumps(result))
    return 0


def _selection() -> dict:
    """Per input, a function of a batch (and the input's name) that finds the rows the
    engine goes on with, keeps them (in a list, as the engine's stores do) and returns
    their count."""
    import numpy as np

    from rxrisk.config.settings import load_config
    from rxrisk.ingest.checked import check_medical_batch
    from rxrisk.ingest.conform import conform_pharmacy
    from rxrisk.ingest.drugs import DrugTable
    from rxrisk.ingest.sources import Source
    from rxrisk.ingest.validate import RememberedCodes, RememberedNdcs, _ndc_lookup
    from rxrisk.io.arrow import keep_rows

    config = load_config()
    drugs = DrugTable.from_reference(config.reference)
    ndcs, codesets = RememberedNdcs(drugs.ndc), RememberedCodes(config.codesets)
    kept: list = []

    def pharmacy(batch, name: str) -> int:
        columns = conform_pharmacy(Source(batch, name))
        ref_row = _ndc_lookup(columns.ndc, drugs.ndc, ndcs)[0]
        tracked = ref_row >= 0
        kept.append(keep_rows({n: batch.column(n) for n in batch.column_names}, tracked))
        return int(np.count_nonzero(tracked))

    def medical(batch, name: str) -> int:
        checked = check_medical_batch(Source(batch, name), codesets=codesets)
        classified = checked.rows.mask > 0
        columns = checked.columns
        kept.append(keep_rows({"m": columns.member_id, "d": columns.service_date}, classified))
        kept.append(checked.rows.mask[classified])
        return int(np.count_nonzero(classified))

    return {"pharmacy": pharmacy, "medical": medical}


if __name__ == "__main__":
    sys.exit(main())
