"""The ``rxrisk`` command line. Argument parsing, progress and exit codes only: the work is
done by the library. Heavy modules (numba kernels, pyarrow) are imported inside commands so
``rxrisk --help`` starts fast and compiles nothing.

Exit codes: 0 success; 2 usage or input-schema error (one line, no traceback); 1 anything
else (one line; set RXRISK_DEBUG=1 for the traceback); 130 after SIGINT (Ctrl-C) and 143 after
SIGTERM, both leaving no output, temporary file or spill file behind.

The rooms: :mod:`rxrisk.cli.main` (parsing, dispatch, exit codes, signals),
:mod:`rxrisk.cli.options` (the parser), :mod:`rxrisk.cli.score` (``score``),
:mod:`rxrisk.cli.commands` (``edits``, ``generate``, ``show``, ``config``, ``report``) and
:mod:`rxrisk.cli.progress` (progress, run summary, first-run notice). ``rxrisk.cli.main`` is
the function here (the console script ``rxrisk.cli:main``); the module is
``sys.modules["rxrisk.cli.main"]``.
"""

from __future__ import annotations

from rxrisk.cli.main import main

__all__ = ["main"]
