"""The forecast schedule: a daemon thread refreshes forecasts every ``refresh_interval_s`` and then
checks for flow anomalies (started and stopped by the app's lifespan, like retention).

Why one thread for both: the anomaly check reads the forecasts the refresh just wrote; running them in
sequence means it never judges a window against a half-written refresh."""

from __future__ import annotations

import logging
import threading

from citywatch.config import CitywatchConfig
from server.forecasting.anomaly_watch import CheckReport, FlowAnomalyWatch
from server.forecasting.refresh import ForecastRefresher, RefreshReport
from server.storage.store import Store

log = logging.getLogger(__name__)


class ForecastService:
    def __init__(self, store: Store, config: CitywatchConfig) -> None:
        self.refresher = ForecastRefresher(store, config)
        self.watch = FlowAnomalyWatch(store, config)
        self.interval_s = config.server.forecasts.refresh_interval_s
        self.last_check: CheckReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> tuple[RefreshReport, CheckReport]:
        rep = self.refresher.refresh()
        log.info(
            "forecast refresh: %d series %s, %d fitted, %d rows in %.1f s",
            rep.series, rep.by_status, rep.fitted, rep.rows, rep.seconds,
        )
        if rep.seconds > self.interval_s:
            log.warning("forecast refresh took %.0f s, longer than its interval (%.0f s)", rep.seconds, self.interval_s)
        self.last_check = self.watch.check()
        return rep, self.last_check

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("forecast refresh failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="citywatch-forecasts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._thread = None
