"""API key rotation (admin): managed keys live hashed in the database beside the environment's keys.

Rotate: add a new key, move clients to it, revoke the old one (its browser sessions end with it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from server.api.models import KeysOut, NewKeyOut
from server.api.params import NOT_FOUND, not_found
from server.auth import get_auth, hash_key, new_key
from server.deps import AdminDep, StoreDep

router = APIRouter(tags=["keys"])


class KeyIn(BaseModel):
    role: Literal["operator", "planner", "admin"]
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the key.")


def _public(k: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": k["id"],
        "role": k["role"],
        "name": k["name"],
        "prefix": k["prefix"],
        "created_at": k["created_at"].isoformat(),
        "revoked_at": k["revoked_at"].isoformat() if k["revoked_at"] else None,
    }


@router.get("/keys", response_model=KeysOut)
def list_keys(store: StoreDep, _who: AdminDep) -> dict[str, Any]:
    """Managed keys (never the secret; ``prefix`` identifies one). Environment keys are not listed."""
    return {"keys": [_public(k) for k in store.keys.list_api_keys()]}


@router.post("/keys", status_code=201, response_model=NewKeyOut)
def add_key(body: KeyIn, request: Request, store: StoreDep, _who: AdminDep) -> dict[str, Any]:
    """Create a key; the response is the only time its secret is shown."""
    key = new_key(body.role)
    key_id = store.keys.add_api_key(body.role, body.name, hash_key(key), key[: len(body.role) + 8])
    get_auth(request).invalidate()
    item = next(k for k in store.keys.list_api_keys() if k["id"] == key_id)
    return {**_public(item), "key": key}


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request, store: StoreDep, _who: AdminDep
) -> Response:
    if not store.keys.revoke_api_key(key_id):
        raise not_found(f"no active key {key_id}")
    get_auth(request).invalidate()
    return Response(status_code=204)
