"""User-facing errors. The CLI maps :class:`InputError` to exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad usage or input schema: one clear line naming what is wrong and the fix."""
