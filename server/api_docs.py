"""``/docs``: Swagger UI served from this server: the files the ``fastapi-offline`` package ships (MIT;
Swagger UI 5, which renders FastAPI's OpenAPI 3.1) with our own page and init script. It works offline
and under the dashboard's CSP (this server's scripts and styles only; checked in Chromium). FastAPI's
built-in page loads from a CDN with an inline script, and fastapi-offline's page has the inline script."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
#: swagger-ui-bundle.js, swagger-ui.css, favicon.png (and ReDoc's file, unused).
ASSET_DIR = str(files("fastapi_offline") / "static")
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>citywatch API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/docs/init.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI) -> None:
    """``GET /docs`` and its assets under ``/docs/assets``."""
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE)
