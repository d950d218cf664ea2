"""Upcasters lift events recorded under an old ``schema_version`` on read.

The log keeps what was written (its hashes cover it); readers only ever see
the newest shape, so decide/apply code handles one version per event type.
"""

from __future__ import annotations

from typing import Any, Callable

Step = Callable[[dict[str, Any]], dict[str, Any]]


class Upcasters:
    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Step] = {}

    def register(self, event_type: str, from_version: int, step: Step) -> None:
        """``step`` turns ``from_version`` data into ``from_version + 1`` data."""
        self._steps[(event_type, from_version)] = step

    def __bool__(self) -> bool:
        """False while no step is registered: readers then skip upcasting altogether."""
        return bool(self._steps)

    def upcast(self, event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        while (step := self._steps.get((event_type, version))) is not None:
            data = step(data)
            version += 1
        return version, data
