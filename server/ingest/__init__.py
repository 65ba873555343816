"""The server's MQTT ingest (see :mod:`server.ingest.service` for the shape, one module per job)."""

from server.ingest.control import ControlChannel, ControlPublisher
from server.ingest.health import INGEST_STATES, IngestCounters, IngestState, IngestStats
from server.ingest.messages import Received
from server.ingest.parse import InvalidMessage, describe_validation_error, resolvable_seqs
from server.ingest.service import Ingest

__all__ = [
    "INGEST_STATES",
    "ControlChannel",
    "ControlPublisher",
    "Ingest",
    "IngestCounters",
    "IngestState",
    "IngestStats",
    "InvalidMessage",
    "Received",
    "describe_validation_error",
    "resolvable_seqs",
]
