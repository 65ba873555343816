"""One camera's incident detection, once a frame after the tracker, the speed estimator and the
stationary state: the rules (``rules``, ``people``) say what holds this frame, the lifecycle
(``lifecycle``) turns that into debounced ``open``/``update``/``closed`` results.

Per-track state is bounded: histories hold a few seconds and are dropped ``track_ttl_frames`` after a
track was last seen; candidates end with their close; cool-downs expire.
"""

from __future__ import annotations

import math

from citywatch.config import CameraConfig, CountingConfig, IncidentsConfig
from citywatch.contract import IncidentType
from vision.detections import Detections
from vision.incidents.lifecycle import IncidentLifecycle, LifecycleTimes
from vision.incidents.people import people_on_carriageway, person_roles
from vision.incidents.rules import CrashCandidates, StoppedVehicles, congestion, wrong_way
from vision.incidents.scene import Candidate, Layout, Scene, TrackMemory
from vision.results import IncidentResult


class IncidentEngine:
    """One camera's incident rules and their debounced lifecycles."""

    def __init__(
        self,
        camera: CameraConfig,
        config: IncidentsConfig | None = None,
        *,
        fps: float = 25.0,
        counting: CountingConfig | None = None,
    ) -> None:
        self.fps = fps if fps and fps > 0 else 25.0
        self.counting = counting or CountingConfig()
        window = max(2, int(round(self.counting.stationary_s * self.fps)))
        self.tracks = TrackMemory(self.fps, window, hist_len=4)
        self.stopped = StoppedVehicles()
        self.crashes = CrashCandidates()
        self.lifecycle = IncidentLifecycle(camera.id, self.fps, self._times)
        self.reconfigure(camera, config)

    def reconfigure(self, camera: CameraConfig, config: IncidentsConfig | None = None) -> None:
        """New lanes, zones or thresholds; open incidents go on (those of a removed area close by themselves)."""
        self.camera = camera
        self.config = config or camera.incidents or IncidentsConfig()
        self.layout = Layout.of(camera)
        self.lifecycle.camera_id = camera.id
        c = self.config
        keep_s = max(c.wrong_way.open_after_s, self.counting.stationary_s + c.crash_candidate.stop_within_s + 1.0)
        self.tracks.resize(max(4, int(math.ceil(keep_s * self.fps)) + 2))

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    @property
    def open_incidents(self) -> list[tuple[str, IncidentType]]:
        """``(incident_id, type)`` of every open incident."""
        return self.lifecycle.open_incidents

    @property
    def tracked(self) -> int:
        """Entries held over frames, all kinds together (bounded whatever the traffic)."""
        return len(self.tracks) + len(self.lifecycle) + len(self.crashes) + len(self.stopped)

    def update(
        self,
        detections: Detections,
        frame_index: int,
        stationary: set[int],
        speeds: dict[int, float] | None = None,
    ) -> list[IncidentResult]:
        if not self.config.enabled:
            return self.lifecycle.close_all(frame_index)
        scene = Scene.of(detections, frame_index, self.fps, self.layout, stationary, speeds or {})
        newly_still = self.tracks.observe(scene)
        c = self.config
        self.crashes.observe(scene, c.crash_candidate, self.tracks, newly_still)
        out = self.lifecycle.step(frame_index, self._candidates(scene))
        ttl = self.counting.track_ttl_frames
        self.crashes.forget(self.tracks.prune(frame_index, ttl), frame_index, ttl)
        return out

    def _candidates(self, scene: Scene) -> list[Candidate]:
        """Every rule's candidates this frame, rule after rule (the order results come out in)."""
        c, open_obs = self.config, self.lifecycle.open_observation
        out: list[Candidate] = []
        if c.stopped_vehicle.enabled:
            out += self.stopped(scene, c.stopped_vehicle, self.tracks, open_obs)
        if c.wrong_way.enabled:
            out += wrong_way(scene, c.wrong_way, self.tracks, open_obs)
        if c.congestion.enabled:
            out += congestion(scene, c.congestion)
        roles = person_roles(scene, self.tracks)
        if c.pedestrian.enabled:
            out += people_on_carriageway(scene, c.pedestrian, roles, "pedestrian")
        if c.cyclist.enabled:
            out += people_on_carriageway(scene, c.cyclist, roles, "cyclist")
        if c.crash_candidate.enabled:
            live = [(x.key, x.obs, x.opened) for x in self.lifecycle.live("crash_candidate")]
            out += self.crashes(scene, c.crash_candidate, live)
        return out

    def _times(self, incident_type: IncidentType) -> LifecycleTimes:
        c = self.config
        rules: dict[IncidentType, LifecycleTimes] = {
            "stopped_vehicle": c.stopped_vehicle, "wrong_way": c.wrong_way, "congestion": c.congestion,
            "pedestrian_on_carriageway": c.pedestrian, "cyclist_on_carriageway": c.cyclist,
            "crash_candidate": c.crash_candidate,
        }
        return rules[incident_type]

    def close_all(self, frame_index: int) -> list[IncidentResult]:
        """Close every open incident (the source ended or the pipeline is being replaced)."""
        return self.lifecycle.close_all(frame_index)
