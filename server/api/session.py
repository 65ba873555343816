"""Browser sessions: exchange an API key for an HttpOnly, SameSite=Strict cookie (EventSource can't
send headers). The cookie is signed and names the key's fingerprint, so removing the key revokes it;
log-out revokes the session itself on the server (a copied cookie stops working too). Log-ins are
throttled per client address and in total (429 with Retry-After)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from server.api.models import LoginOut, WhoAmIOut
from server.auth import SESSION_COOKIE, check_same_origin, get_auth
from server.deps import ReaderDep

router = APIRouter(tags=["session"])


class SessionIn(BaseModel):
    key: str = Field(min_length=1, max_length=512)


@router.post("/session", response_model=LoginOut)
def create_session(body: SessionIn, request: Request, response: Response) -> dict[str, Any]:
    auth = get_auth(request)
    if auth.open:
        return {"role": "admin", "mode": "open"}
    role = auth.check_key(request, body.key)
    if role is None:
        raise HTTPException(401, detail="invalid API key")
    response.set_cookie(
        SESSION_COOKIE,
        auth.make_session(role, body.key),
        max_age=auth.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return {"role": role, "mode": "keys"}


@router.get("/session", response_model=WhoAmIOut)
def who_am_i(request: Request, who: ReaderDep) -> dict[str, Any]:
    return {"role": who.role, "mode": "open" if get_auth(request).open else "keys", "via": who.via}


@router.delete("/session", status_code=204, response_class=Response)
def end_session(request: Request, response: Response) -> Response:
    """Log out: the session is revoked on the server (every route refuses it from now on), the cookie
    cleared. Cross-site log-outs are refused like any other cookie-authenticated change."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth = get_auth(request)
        check_same_origin(request, auth.settings.allowed_origins)
        auth.end_session(token)
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", httponly=True)
    response.status_code = 204
    return response
