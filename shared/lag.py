"""How far a consumer is behind an upstream, in events and in time, as ``health()`` shows it.

A consumer knows the last position it applied; the upstream's head comes
from the upstream itself (its own log, or its ``log_head()`` asked every
few seconds), so events not yet delivered count as lag too. Times are the
upstream's ``recorded_at`` text (ISO 8601 UTC), so the lag in seconds is
measured on the producer's clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def upstream_lag(head: tuple[int, str | None] | None, applied: int,
                 last_applied: tuple[str, float] | None, now: float) -> dict[str, Any]:
    """``head``, ``applied``, ``lag_events``, ``lag_seconds`` and ``since_last_applied_seconds`` of one upstream.

    ``head`` is ``(position, recorded_at)`` or ``None`` when the upstream
    could not be asked yet; ``last_applied`` is ``(recorded_at of the event,
    wall time it was applied)`` or ``None`` before the first in this process.
    """
    head_position, head_recorded = head if head is not None else (None, None)
    lag_events = max(head_position - applied, 0) if head_position is not None else None
    lag_seconds: float | None = 0.0 if lag_events == 0 else None
    if lag_events and head_recorded and last_applied is not None:
        lag_seconds = round(max((_instant(head_recorded) - _instant(last_applied[0])).total_seconds(), 0.0), 3)
    return {
        "head": head_position,
        "applied": applied,
        "lag_events": lag_events,
        "lag_seconds": lag_seconds,
        "since_last_applied_seconds": round(now - last_applied[1], 3) if last_applied is not None else None,
    }


def _instant(recorded_at: str) -> datetime:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
