"""Recent events, and the live stream (Server-Sent Events) of newly stored ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from server.api.models import EventsOut
from server.api.params import EVENT_STREAM_CONTENT, IdParam
from server.deps import HubDep, ReaderDep, StoreDep

router = APIRouter(tags=["events"])

KEEPALIVE_S = 15.0


@router.get("/events", response_model=EventsOut)
def recent_events(
    store: StoreDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    kind: Annotated[str | None, Query(pattern=r"^(line_crossing|camera_status)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first (by event time)."""
    return {"events": store.event_log.recent_events(camera_id=camera_id, kind=kind, limit=limit)}


@router.get(
    "/events/live", response_class=StreamingResponse, responses={200: {"content": EVENT_STREAM_CONTENT}}
)
async def live_events(
    request: Request, hub: HubDep, _who: ReaderDep, camera_id: IdParam = None
) -> StreamingResponse:
    """``event: <kind>`` + ``data: <event json>`` per stored event; ``dropped`` when this client lagged."""
    keepalive = float(getattr(request.app.state, "sse_keepalive_s", KEEPALIVE_S))

    async def stream() -> AsyncIterator[str]:
        sub = hub.subscribe()
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                item = await sub.get(timeout=keepalive)
                if item is None:
                    if sub.closed:
                        return
                    yield ": keep-alive\n\n"
                    continue
                if (
                    camera_id
                    and isinstance(item.data, dict)
                    and item.data.get("camera_id")
                    not in (
                        None,
                        camera_id,
                    )
                ):
                    continue
                yield f"event: {item.kind}\ndata: {json.dumps(item.data, separators=(',', ':'))}\n\n"
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
