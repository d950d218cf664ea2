"""What logs, dead letters and ``health()`` say about an error: what kind and where, never the data.

These texts outlive an erasure (log files) or are shown to any role
(``health()``), but an error's own message may quote what it was about:
PostgreSQL's ``DETAIL: Failing row contains (...)`` and ``Key (...)=(...)``,
a data exception quoting the input it could not take, or an exception
raised by a projection holding decrypted values. So an error is described
by its type; a database error also by its driver's error class, SQLSTATE,
table, column or constraint, and its primary message unless it is a data
exception (SQLSTATE class 22, whose messages quote values); and by the line
of this project's code it came from. The service's own errors
(``shared.errors``) are written to name ids and fields only, and keep their message.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from sqlalchemy.exc import StatementError

from shared.errors import CrmError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_EXCEPTION_CLASS = "22"
_DIAGNOSTICS = ("table_name", "column_name", "constraint_name")


def describe(error: BaseException) -> str:
    """``Type[: what the database or this project says] [at file:line in function]``."""
    kind = type(error).__name__
    if isinstance(error, CrmError):
        return f"{kind}: {error}"
    cause = _database_cause(error.orig) if isinstance(error, StatementError) and error.orig is not None else ""
    where = _raised_at(error)
    return kind + (f": {cause}" if cause else "") + (f" at {where}" if where else "")


def _database_cause(orig: BaseException) -> str:
    """The driver's error class and what the database says without quoting data."""
    sqlstate = getattr(orig, "pgcode", None)
    if sqlstate is not None:  # psycopg2
        diagnostics = getattr(orig, "diag", None)
        named = [f"{name.removesuffix('_name')} {value}" for name in _DIAGNOSTICS
                 if (value := getattr(diagnostics, name, None))]
        primary = getattr(diagnostics, "message_primary", None)
        said = [primary] if primary and not sqlstate.startswith(DATA_EXCEPTION_CLASS) else []
        return ", ".join([f"{type(orig).__name__} (SQLSTATE {sqlstate})", *named, *said])
    if type(orig).__module__.startswith("sqlite3"):  # SQLite names the schema, never the bound values
        return f"{type(orig).__name__} ({getattr(orig, 'sqlite_errorname', 'SQLITE_ERROR')}), {orig}"
    return type(orig).__name__


def _raised_at(error: BaseException) -> str:
    """The innermost frame of this project's own code the error passed through, or ``""``."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PROJECT_ROOT) and "site-packages" not in path.parts:
            return f"{path.relative_to(PROJECT_ROOT)}:{frame.lineno} in {frame.name}"
    return ""
