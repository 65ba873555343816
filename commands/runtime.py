"""Long-running roles behind ``citywatch edge`` and ``citywatch server``: signals in, clean stop out."""

from __future__ import annotations

import logging
import signal
import threading

from citywatch.config import CitywatchConfig

log = logging.getLogger(__name__)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def run_edge(config: CitywatchConfig) -> int:
    """Run every configured camera until SIGINT/SIGTERM; uncommitted events stay in the outbox."""
    from edge.worker import EdgeWorker
    from vision.detector import DetectorError, load_detector

    try:
        detector = load_detector(config.model)
    except (DetectorError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    worker = EdgeWorker(config, detector=detector)
    worker.run_until(_stop_on_signals())
    return 0


def run_server(config: CitywatchConfig) -> int:
    from server.runner import serve

    serve(config)
    return 0
