"""``column IN (many values)`` with the values as one bound parameter.

SQLAlchemy's expanding ``IN`` renders and names a parameter per value on
every execution: for the 500 ids of a reveal or the 5,000 of a birthday
page that costs more than the query. Here the list travels as one
parameter, a JSON array read with ``json_each`` on SQLite and an array
compared with ``= ANY`` on PostgreSQL, so the statement compiles once and
stays in SQLAlchemy's cache.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import String, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY


def among(column: Any, values: Sequence[str], dialect: str) -> Any:
    """``column IN values`` for text values, for the ``dialect`` (an engine's ``dialect.name``)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(values)))))
