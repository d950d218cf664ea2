"""What the campaigns service shows: a campaign, the campaign list and a run's progress."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from services.campaigns import deliveries, domain
from services.campaigns.projection import campaign_list
from shared.errors import NotFound


def day(iso_text: str) -> date:
    return date.fromisoformat(iso_text)


def campaign_view(campaign: domain.Campaign) -> dict[str, Any]:
    return {"campaign_id": campaign.campaign_id, "version": campaign.version, "status": campaign.status,
            **campaign.definition, "created_at": campaign.created_at, "updated_at": campaign.updated_at}


def list_campaigns(engine: Engine, query: dict[str, Any]) -> dict[str, Any]:
    """Newest first, by status if given, paged."""
    where = [] if query["status"] is None else [campaign_list.c.status == query["status"]]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(campaign_list).where(*where)).scalar_one()
        rows = connection.execute(select(campaign_list).where(*where)
                                  .order_by(campaign_list.c.created_at.desc(), campaign_list.c.campaign_id)
                                  .limit(query["page_size"])
                                  .offset((query["page"] - 1) * query["page_size"])).mappings().all()
    return {"items": [dict(row) for row in rows], "total": total, "page": query["page"],
            "page_size": query["page_size"]}


def run_view(engine: Engine, run_id: str) -> dict[str, Any]:
    row = deliveries.run_row(engine, run_id)
    if row is None:
        raise NotFound(f"no campaign run {run_id}")
    return {"run_id": run_id, "campaign_id": row["campaign_id"], "on_date": row["on_date"],
            "status": row["status"], "started_at": row["started_at"], "finished_at": row["finished_at"],
            **row["counts"]}
