"""Run an EdgeWorker from a YAML config with a fake pipeline, in its own process, until SIGTERM.

``python edge_runner.py CONFIG EVERY_N`` emits one crossing per configured line on every N-th
frame, with track ids that start at a random offset per pipeline (as a real tracker's do after a
restart). The tests kill -9 this process mid-clip and start it again.
"""

import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_testkit import RandomTrackPipeline  # noqa: E402

from citywatch.config import load_config  # noqa: E402
from edge.logs import configure_logging  # noqa: E402
from edge.worker import EdgeWorker  # noqa: E402


def main() -> None:
    config = load_config(sys.argv[1])
    every = int(sys.argv[2])
    configure_logging(config.edge.log_format, logging.INFO)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    frames = range(every - 1, 10**6, every)
    worker = EdgeWorker(config, pipeline_factory=lambda cam, fps: RandomTrackPipeline(cam, fps, frames))
    worker.run_until(stop, timeout=10)


if __name__ == "__main__":
    main()
