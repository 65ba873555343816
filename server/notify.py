"""Outgoing incident notifications: signed webhooks and e-mail (``server.incidents`` config section).

Webhook: ``POST`` of ``{"event": "incident.opened"|"incident.escalated", "level": n, "incident": {...}}``
with ``X-Citywatch-Event``, ``X-Citywatch-Timestamp`` (epoch seconds) and ``X-Citywatch-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>`` (``verify_signature`` checks one;
reject timestamps older than a few minutes to stop replays). The secret comes from the environment
variable ``secret_env`` names, never from the file.

E-mail: plain text through ``smtplib`` (optional STARTTLS or SSL, login from ``username_env`` /
``password_env``); escalations also go to ``escalate_to``. Each channel is tried ``retries`` + 1 times
with a short back-off; the result of each is returned for the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
import urllib.request
from email.message import EmailMessage
from typing import Any

from citywatch.config import ServerIncidentsConfig
from citywatch.contract import SEVERITY_RANK

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Citywatch-Signature"
TIMESTAMP_HEADER = "X-Citywatch-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, max_age_s: float = 300.0) -> bool:
    """For receivers: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= max_age_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class Notifier:
    def __init__(self, config: ServerIncidentsConfig) -> None:
        self.config = config

    @property
    def channels(self) -> int:
        return len(self.config.webhooks) + int(self.config.email is not None and bool(self.config.email.to))

    def wants(self, rec: dict[str, Any]) -> bool:
        c = self.config
        if SEVERITY_RANK.get(rec.get("severity", "medium"), 1) < SEVERITY_RANK[c.min_severity]:
            return False
        return c.types is None or rec.get("incident_type") in c.types

    def send(self, rec: dict[str, Any], level: int) -> list[tuple[str, bool, str]]:
        """Every channel, with retries; ``[(channel, ok, detail)]``."""
        results = []
        kind = "incident.opened" if level == 0 else "incident.escalated"
        for hook in self.config.webhooks:
            results.append((f"webhook {hook.url}", *self._retry(lambda h=hook: self._webhook(h, kind, rec, level))))
        email = self.config.email
        if email is not None and (email.to or (level > 0 and email.escalate_to)):
            results.append((f"email {email.host}:{email.port}", *self._retry(lambda: self._email(rec, level))))
        return results

    def _retry(self, fn: Any) -> tuple[bool, str]:
        delay, last = 0.5, ""
        for attempt in range(self.config.retries + 1):
            try:
                return True, str(fn() or "sent")
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported
                last = f"{type(exc).__name__}: {exc}"
                log.warning("incident notification failed (attempt %d): %s", attempt + 1, last)
                if attempt < self.config.retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        return False, last

    def _webhook(self, hook: Any, kind: str, rec: dict[str, Any], level: int) -> str:
        body = json.dumps({"event": kind, "level": level, "incident": rec}, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Citywatch-Event": kind, TIMESTAMP_HEADER: ts,
                   "User-Agent": "citywatch-server"}
        secret = os.environ.get(hook.secret_env) if hook.secret_env else None
        if hook.secret_env and not secret:
            log.warning("webhook %s: environment variable %s is not set; sending unsigned", hook.url, hook.secret_env)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, ts, body)
        req = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=hook.timeout_s) as resp:  # noqa: S310 - configured http(s) URL
            return f"HTTP {resp.status}"

    def _email(self, rec: dict[str, Any], level: int) -> str:
        e = self.config.email
        assert e is not None
        to = list(e.to) + (list(e.escalate_to) if level > 0 else [])
        msg = EmailMessage()
        what = rec["incident_type"].replace("_", " ")
        prefix = f"[citywatch] ESCALATION {level}: " if level else "[citywatch] "
        msg["Subject"] = f"{prefix}{what} at camera {rec['camera_id']} ({rec['severity']})"
        msg["From"] = e.from_addr
        msg["To"] = ", ".join(dict.fromkeys(to))
        lines = [
            f"Incident {rec['incident_id']}: {what}",
            f"Camera: {rec['site_id']}/{rec['camera_id']}" + (f", lane {rec['lane_id']}" if rec.get("lane_id") else "")
            + (f", zone {rec['zone_id']}" if rec.get("zone_id") else ""),
            f"Severity: {rec['severity']} (confidence {rec['confidence']:.2f})",
            f"Started: {rec['started_at']}",
            f"State: {rec['state']}, status: {rec['status']}",
        ]
        if rec.get("message"):
            lines.append(f"Details: {rec['message']}")
        if level:
            lines.append(f"Nobody has acknowledged this incident yet (escalation level {level}).")
        msg.set_content("\n".join(lines) + "\n")
        user = os.environ.get(e.username_env) if e.username_env else None
        password = os.environ.get(e.password_env) if e.password_env else None
        smtp_cls = smtplib.SMTP_SSL if e.ssl else smtplib.SMTP
        with smtp_cls(e.host, e.port, timeout=e.timeout_s) as smtp:
            if e.starttls and not e.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password or "")
            smtp.send_message(msg)
        return f"to {len(set(to))} recipient(s)"
