"""Incident detection over confirmed tracks, lanes and zones: pure (no I/O), per camera, debounced.

- ``scene``: what every rule reads this frame (``Scene``, ``TrackMemory``) and returns (``Candidate``);
- ``rules``: stopped vehicle, wrong way, congestion, crash candidate; ``people``: pedestrians and cyclists
  on the carriageway;
- ``lifecycle``: open, update, close and cool-down, whatever the rule;
- ``engine``: ``IncidentEngine``, one camera's rules and lifecycle, run once a frame by the pipeline.
"""

from vision.incidents.engine import IncidentEngine
from vision.incidents.lifecycle import INCIDENT_NAMESPACE, IncidentLifecycle
from vision.incidents.people import CYCLING_BOXES_S, CYCLIST_MIN_FRAMES
from vision.incidents.scene import Candidate, Observation, Scene

__all__ = [
    "CYCLING_BOXES_S",
    "CYCLIST_MIN_FRAMES",
    "INCIDENT_NAMESPACE",
    "Candidate",
    "IncidentEngine",
    "IncidentLifecycle",
    "Observation",
    "Scene",
]
