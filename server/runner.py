"""Run the server: blocking (``serve``) or in a background thread for the demo and tests
(``serve_in_thread``), with uvicorn on a given or free port."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from citywatch.config import CitywatchConfig
from server.app import create_app, trusted_proxies
from server.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class ServerHandle:
    """A running server: ``url`` (no trailing slash), ``app`` (its ``state`` has store, ingest, hub)."""

    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 15.0) -> None:
        """End live streams, then shut down (the lifespan stops ingest and closes the store)."""
        self.app.state.hub.close()
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _proxy_args(config: CitywatchConfig) -> dict[str, Any]:
    """X-Forwarded-For is believed from the configured proxies only (uvicorn would trust 127.0.0.1's by
    default, unasked)."""
    proxies = trusted_proxies(config)
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": ",".join(proxies) or None}


def serve_in_thread(
    config: CitywatchConfig,
    *,
    host: str | None = None,
    port: int = 0,
    ingest: bool = True,
    store: Store | None = None,
    api_keys: str | None = None,
    log_level: str = "warning",
    ready_timeout: float = 30.0,
) -> ServerHandle:
    """Start the app in a daemon thread; returns once it accepts requests. ``port=0`` picks a free port."""
    host = host or config.server.host
    app = create_app(config, ingest=ingest, store=store, api_keys=api_keys, bind_host=host)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    uv_config = uvicorn.Config(
        app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5, access_log=False, **_proxy_args(config)
    )
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="citywatch-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the citywatch server failed to start (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the citywatch server did not start within {ready_timeout} s")
        time.sleep(0.02)
    url_host = f"[{host}]" if ":" in host else host
    log.info("citywatch server on http://%s:%d", url_host, bound_port)
    return ServerHandle(f"http://{url_host}:{bound_port}", app, server, thread)


def serve(config: CitywatchConfig, *, host: str | None = None, port: int | None = None, ingest: bool = True) -> None:
    """Run in the foreground until Ctrl+C (live streams get 5 s to close)."""
    host = host or config.server.host
    app = create_app(config, ingest=ingest, bind_host=host)
    uvicorn.run(
        app,
        host=host,
        port=config.server.port if port is None else port,
        timeout_graceful_shutdown=5,
        log_level="info",
        **_proxy_args(config),
    )
