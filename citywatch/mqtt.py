"""The one way citywatch builds an MQTT client and guards the callbacks paho runs on its thread.

Why here: the edge (one client per camera) and the server's ingest (one subscriber) must agree on the
protocol version, the persistent session (``clean_session=False`` in 3.1.1, ``clean_start=False`` with
a session expiry in 5), TLS, credentials and the reconnect back-off; two setups drifted apart before.
Only what differs stays with the caller: the client id, the credentials' user, a client class (the
ingest's fast reader), manual acknowledgements, a will.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citywatch.config import MQTTConfig

log = logging.getLogger(__name__)

C = TypeVar("C", bound=mqtt.Client)
P = ParamSpec("P")

#: paho's reconnect back-off starts here (seconds) and doubles up to the caller's maximum.
RECONNECT_MIN_S = 1


def is_v5(config: MQTTConfig) -> bool:
    return config.protocol == "5"


def build_client(
    config: MQTTConfig,
    *,
    client_id: str,
    credentials: tuple[str | None, str | None],
    client_class: Callable[..., C],
    reconnect_max_s: float = 30.0,
    **client_kwargs: Any,
) -> C:
    """A client of ``client_class`` for ``config``: callback API 2, the configured protocol with a
    persistent session, ``credentials`` as ``(user, password)`` (no user: anonymous), TLS when enabled
    and reconnect delays of 1 s up to ``reconnect_max_s``. ``client_kwargs`` go to the constructor
    (e.g. ``manual_ack``). Connect with :func:`connect_async`."""
    kwargs: dict[str, Any] = {
        "callback_api_version": CallbackAPIVersion.VERSION2,
        "client_id": client_id,
        "protocol": mqtt.MQTTv5 if is_v5(config) else mqtt.MQTTv311,
        **client_kwargs,
    }
    if not is_v5(config):
        kwargs["clean_session"] = False  # MQTT 5 says so at connect time: clean_start=False
    client = client_class(**kwargs)
    user, password = credentials
    if user:
        client.username_pw_set(user, password)
    tls = config.tls
    if tls.enabled:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
        if tls.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(RECONNECT_MIN_S, max(RECONNECT_MIN_S, int(reconnect_max_s)))
    return client


def connect_async(client: mqtt.Client, config: MQTTConfig) -> None:
    """Connect in the background and start paho's network thread: a broker that is down neither
    blocks nor fails the caller, paho keeps retrying. MQTT 5 resumes the session, which lives on for
    ``session_expiry_s`` after a disconnect."""
    if is_v5(config):
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
        props.SessionExpiryInterval = config.session_expiry_s
        client.connect_async(config.host, config.port, config.keepalive_s, clean_start=False, properties=props)
    else:
        client.connect_async(config.host, config.port, config.keepalive_s)
    client.loop_start()


def guard(
    fn: Callable[P, object],
    *,
    logger: logging.Logger | None = None,
    message: str = "MQTT callback %s failed",
    on_error: Callable[[Exception], None] | None = None,
) -> Callable[P, None]:
    """``fn`` that logs an exception (``message`` with the function's name) instead of raising it:
    paho runs callbacks on its network thread, which an exception would stop. ``on_error`` then gets
    the exception (e.g. to record a thread's failure)."""
    name = getattr(fn, "__name__", repr(fn))

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            (logger or log).exception(message, name)
            if on_error is not None:
                on_error(exc)

    return guarded
