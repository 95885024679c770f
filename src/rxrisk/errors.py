"""User-facing errors. The CLI maps :class:`InputError` to exit code 2."""

from __future__ import annotations

#: the message for a configuration file whose arrays or tables nest too deeply to read
TOML_TOO_DEEP = (
    "arrays or tables nested too deeply to read; a configuration file needs a few levels"
)


class InputError(ValueError):
    """Bad usage or input schema: one clear line naming what is wrong and the fix."""


def shown(value) -> str:
    """``repr(value)`` cut to 40 characters, for messages that echo an argument."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
