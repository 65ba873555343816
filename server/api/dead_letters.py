"""Dead letters: messages the server could not use, with the reason (admin only: payloads may be raw)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from server.api.models import DeadLettersOut
from server.deps import AdminDep, StoreDep

router = APIRouter(tags=["dead-letters"])


@router.get("/dead-letters", response_model=DeadLettersOut)
def dead_letters(
    store: StoreDep,
    _who: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    items, total = store.list_dead_letters(limit=limit, offset=offset)
    for it in items:
        it["received_at"] = it["received_at"].isoformat()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
