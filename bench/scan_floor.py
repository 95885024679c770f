"""The floor of ``rxrisk score`` as a command: a process that reads both inputs the way the
command's streaming engine reads them, and does nothing else.

It readies its process as the command does (OpenBLAS's threads, the allocator picked for the
book's size), opens each input with the engine's own batch reader (the columns the engine
reads, the text columns it reads as dictionaries, its batch size) and pulls every batch, one
input after the other. No row is checked, kept or scored and nothing is written, so its time
is what the command would take if everything but reading were free: ``bench_pair.py
--floor`` runs it with an install's Python, round by round beside the read and the commands,
to show how much of a command's time is the read and how much is the engine's own work.

    python bench/scan_floor.py BOOK/pharmacy.parquet BOOK/medical.parquet

Prints one line of JSON: rows read per input and seconds from opening the first input to the
last batch.
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
    args = p.parse_args(argv)

    from rxrisk.cli.allocator import pick_allocator
    from rxrisk.cli.main import one_blas_thread

    one_blas_thread()  # before numpy, as the command does
    pick_allocator(argparse.Namespace(**vars(args), partitions=None, memory_budget=None))

    from rxrisk.engines.batches import engine_columns, open_batches
    from rxrisk.engines.stream import STREAM_DICTIONARY_COLUMNS, StreamOptions
    from rxrisk.ingest.sources import MEDICAL_REQUIRED, PHARMACY_OPTIONAL, PHARMACY_REQUIRED

    inputs = (
        ("pharmacy", args.pharmacy, engine_columns(PHARMACY_REQUIRED, PHARMACY_OPTIONAL)),
        ("medical", args.medical, engine_columns(MEDICAL_REQUIRED, ())),
    )
    t = time.perf_counter()
    rows = {}
    for label, path, columns in inputs:
        src = open_batches(
            path,
            label=label,
            batch_rows=StreamOptions.batch_rows,
            columns=columns,
            dictionary_columns=STREAM_DICTIONARY_COLUMNS,
        )
        rows[label] = sum(batch.num_rows for batch in src.batches)
    print(json.dumps({"rows": rows, "scan_s": round(time.perf_counter() - t, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
