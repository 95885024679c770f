"""Reading a TOML settings file into a msgspec struct, every error one line naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from rxrisk.errors import TOML_TOO_DEEP, InputError

#: msgspec's text before the path of the value at fault, e.g. ``... - at `$.flags[2].when```
_AT = " - at `$"
_UNKNOWN = "Object contains unknown field"


def explain_field(exc: msgspec.ValidationError) -> str:
    """msgspec's message with the value at fault named as ``field <path>``.

    Parameters
    ----------
    exc : msgspec.ValidationError

    Returns
    -------
    str
        E.g. ``field flags[2].when: Expected `str`, got `int```; msgspec's text as it is when
        it names no path.
    """
    text = str(exc)
    if _AT + "." in text:
        msg, where = text.rsplit(_AT + ".", 1)
        return f"field {where.rstrip('`')}: {msg}"
    return text


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str, str, str | None]:
    """msgspec's message and the first two steps of the path of the value at fault.

    Parameters
    ----------
    exc : msgspec.ValidationError

    Returns
    -------
    message : str
        msgspec's text without the path.
    table : str
        The first step of the path (a table of the file), or "" for the top level.
    key : str
        The rest of the path (the key in that table), or "".
    unknown : str or None
        The name of an unknown key or table (``"?"`` when msgspec does not say it); None when
        the error is not about an unknown name.
    """
    msg, _, at = str(exc).partition(_AT)
    table, _, key = at.rstrip("`").lstrip(".").partition(".")
    unknown = None
    if msg.startswith(_UNKNOWN):
        unknown = msg.split("`")[1] if "`" in msg else "?"
    return msg, table, key, unknown


def convert_settings(
    data: dict,
    type_: type,
    where: str,
    *,
    explain: Callable[[msgspec.ValidationError], str] = explain_field,
):
    """Convert a dict of the structure of a settings file into ``type_``.

    Parameters
    ----------
    data : dict
        The tables and keys of the file as plain data.
    type_, explain
        As for :func:`decode_settings_file`.
    where : str
        The start of the error message, e.g. ``"edits dict"``.

    Returns
    -------
    type_
        The converted struct; an :class:`InputError` ``"<where>: <explain(error)>"`` when
        ``data`` does not fit it.
    """
    try:
        return msgspec.convert(data, type=type_)
    except msgspec.ValidationError as exc:
        raise InputError(f"{where}: {explain(exc)}") from None


def decode_settings_file(
    path: Path,
    type_: type,
    what: str,
    *,
    explain: Callable[[msgspec.ValidationError], str] = explain_field,
    read_fix: str = "; check the path",
    invalid_toml: str = "not valid TOML ({})",
):
    """Read a TOML settings file and decode it into ``type_``.

    Parameters
    ----------
    path : pathlib.Path
    type_ : type
        The msgspec struct to build.
    what : str
        What the file is, the start of every error message, e.g. ``"rules file"``.
    explain : callable, optional
        Turns msgspec's validation error into the rest of the message.
    read_fix : str, optional
        Appended to the message of a file that cannot be read.
    invalid_toml : str, optional
        The message of a file that is not TOML; ``{}`` stands for msgspec's text.

    Returns
    -------
    type_

    Raises
    ------
    InputError
        One line ``"<what> <path>: ..."``: the file cannot be read, is not TOML, nests too
        deeply, or does not fit ``type_``.
    """
    where = f"{what} {path}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror}){read_fix}") from None
    try:
        return msgspec.toml.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise InputError(f"{where}: {explain(exc)}") from None
    except msgspec.DecodeError as exc:
        raise InputError(f"{where}: {invalid_toml.format(exc)}") from None
    except RecursionError:
        raise InputError(f"{where}: {TOML_TOO_DEEP}") from None
