"""Object detectors: Ultralytics (``.pt``), and native ONNX Runtime / OpenVINO runtimes that need no torch.

Every backend returns the same thing: ``Detections`` in source-frame pixels with citywatch classes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np

from citywatch.config import ModelConfig
from citywatch.contract import CLASS_NAMES
from citywatch.paths import resolve_weights
from vision.detections import Detections
from vision.export import Size, size_hw, size_tag

if TYPE_CHECKING:
    from types import ModuleType

    import openvino
    import torch
    from ultralytics.engine.results import Results

log = logging.getLogger(__name__)

#: COCO class index -> citywatch class name (COCO order as in Ultralytics' coco.yaml).
COCO_TO_CLASS: dict[int, str] = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}


class Detector(Protocol):
    version: str

    def detect(self, frame: np.ndarray) -> Detections: ...


@runtime_checkable
class RegionDetector(Protocol):
    """A detector that can look at a part of the frame only (boxes still in whole-frame pixels)."""

    def detect_region(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> Detections: ...


class DetectorError(RuntimeError):
    """The model cannot be loaded or run; the message says which file and why."""


def _coco_lookup(classes: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """COCO ids to ask the model for, and a COCO id -> citywatch index table (-1: ignored)."""
    wanted = set(classes)
    lut = np.full(80, -1, dtype=np.int64)
    ids = []
    for coco, name in COCO_TO_CLASS.items():
        if name in wanted:
            lut[coco] = CLASS_NAMES.index(name)
            ids.append(coco)
    return ids, lut


def model_version(path: Path) -> str:
    """File name plus a short content hash, so events say exactly which model counted them."""
    h = hashlib.sha256()
    files = sorted(path.glob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return f"{path.name}@{h.hexdigest()[:12]}"


def default_threads(configured: int | None) -> int:
    """The configured count, else every core this process may use."""
    if configured:
        return configured
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def shift(dets: Detections, dx: float, dy: float) -> Detections:
    """Boxes found in a crop, moved to the pixels of the frame the crop starts at (``dx``, ``dy``)."""
    if len(dets) and (dx or dy):
        dets.xyxy = dets.xyxy + np.array([dx, dy, dx, dy], dtype=dets.xyxy.dtype)
    return dets


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Ultralytics' box fields are tensors (on any device) or arrays."""
    return values if isinstance(values, np.ndarray) else values.cpu().numpy()


class UltralyticsDetector:
    """Any model Ultralytics loads (``.pt``, ``.onnx``, OpenVINO folder), run through ``YOLO.predict``."""

    def __init__(self, weights: Path, config: ModelConfig, imgsz: Size | None = None) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")  # no hub checks, no run-time pip installs
        try:
            import torch
            from ultralytics import YOLO
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DetectorError(
                "the ultralytics backend needs the 'yolo' extra: pip install 'citywatch[yolo]'"
            ) from exc
        # Ultralytics sets OMP_NUM_THREADS=1 at import; without this PyTorch runs on one core.
        torch.set_num_threads(default_threads(config.threads))
        try:
            self._model = YOLO(str(weights), task="detect")
        except Exception as exc:
            raise DetectorError(f"cannot load model {weights}: {exc}") from exc
        self.config = config
        self._coco_ids, self._lut = _coco_lookup(config.classes)
        self.version = model_version(weights)
        self.imgsz: Size = imgsz or _fixed_size(config)

    def detect(self, frame: np.ndarray) -> Detections:
        results = self._model.predict(
            frame,
            imgsz=list(size_hw(self.imgsz)),
            conf=self.config.confidence,
            iou=self.config.iou,
            classes=self._coco_ids,
            agnostic_nms=self.config.agnostic_nms,
            device=self.config.device,
            verbose=False,
        )
        r = cast("Results", next(iter(results)))  # one frame in, one Results out (tensors only when embedding)
        boxes = r.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        cls = self._lut[_numpy(boxes.cls).astype(np.int64)]
        keep = cls >= 0
        return Detections(_numpy(boxes.xyxy)[keep], _numpy(boxes.conf)[keep], cls[keep])

    def detect_region(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> Detections:
        """Detect inside ``box`` (x1, y1, x2, y2) only; boxes come back in whole-frame pixels."""
        return shift(self.detect(frame[box[1] : box[3], box[0] : box[2]]), box[0], box[1])


#: ``imgsz: auto`` never asks for more than this on the longer side (the size the COCO models were trained at).
AUTO_MAX_SIDE = 640


def auto_imgsz(height: int, width: int, max_side: int = AUTO_MAX_SIDE) -> tuple[int, int]:
    """The model input for a ``height`` x ``width`` picture: its own shape (downscaled to ``max_side`` at most,
    never upscaled), each side rounded up to the 32 px the network needs; the rounding is grey padding."""
    scale = min(1.0, max_side / max(height, width, 1))

    def up32(v: float) -> int:
        return max(64, int(-(-round(v) // 32) * 32))

    return up32(height * scale), up32(width * scale)


def letterbox(frame: np.ndarray, size: Size) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to ``size`` (a side, or (height, width)); grey 114, as Ultralytics."""
    import cv2

    th, tw = size_hw(size)
    h, w = frame.shape[:2]
    scale = min(th / h, tw / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else frame
    top = (th - nh) // 2
    left = (tw - nw) // 2
    # one allocation: the resized frame copied once into its grey border
    out = cv2.copyMakeBorder(
        resized, top, th - nh - top, left, tw - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    return out, scale, (left, top)


class _RawYoloDetector:
    """Shared pre- and post-processing for runtimes that return the raw (1, 84, N) YOLOv8 head."""

    def __init__(self, config: ModelConfig, imgsz: Size) -> None:
        self.config = config
        self._coco_ids, self._lut = _coco_lookup(config.classes)
        self.imgsz: Size = imgsz

    def _infer(self, blob: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _blob(self, img: np.ndarray) -> np.ndarray:
        """Letterboxed BGR uint8 -> what the runtime takes; one pass (RGB, 0..1, NCHW float32)."""
        import cv2

        return cv2.dnn.blobFromImage(img, 1.0 / 255.0, swapRB=True)

    def detect(self, frame: np.ndarray) -> Detections:
        if frame is None or frame.ndim != 3:
            raise ValueError("detect() needs an HxWx3 BGR frame")
        img, scale, (left, top) = letterbox(frame, self.imgsz)
        return self._decode(self._infer(self._blob(img))[0], frame.shape, scale, left, top)

    def detect_region(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> Detections:
        """Detect inside ``box`` (x1, y1, x2, y2) only; boxes come back in whole-frame pixels."""
        return shift(self.detect(frame[box[1] : box[3], box[0] : box[2]]), box[0], box[1])

    def _decode(self, raw: np.ndarray, shape: tuple[int, ...], scale: float, left: float, top: float) -> Detections:
        """One image's raw (84, N) head -> boxes in source pixels after the score filter and NMS."""
        import cv2

        pred = raw.T  # (N, 84)
        scores_all = pred[:, 4:][:, self._coco_ids]
        best = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(pred)), best]
        mask = scores >= self.config.confidence
        if not mask.any():
            return Detections.empty()
        boxes = pred[mask, :4]
        scores = scores[mask]
        coco = np.asarray(self._coco_ids)[best[mask]]
        xyxy = np.empty_like(boxes)
        xyxy[:, 0] = (boxes[:, 0] - boxes[:, 2] / 2 - left) / scale
        xyxy[:, 1] = (boxes[:, 1] - boxes[:, 3] / 2 - top) / scale
        xyxy[:, 2] = (boxes[:, 0] + boxes[:, 2] / 2 - left) / scale
        xyxy[:, 3] = (boxes[:, 1] + boxes[:, 3] / 2 - top) / scale
        h, w = shape[:2]
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
        xywh = np.stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1)
        if self.config.agnostic_nms:
            kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.config.confidence, self.config.iou)
        else:
            kept = cv2.dnn.NMSBoxesBatched(
                xywh.tolist(), scores.tolist(), coco.tolist(), self.config.confidence, self.config.iou
            )
        keep = np.asarray(kept, dtype=np.int64).reshape(-1)
        return Detections(xyxy[keep], scores[keep], self._lut[coco[keep]])


class OnnxRuntimeDetector(_RawYoloDetector):
    def __init__(self, weights: Path, config: ModelConfig, imgsz: Size | None = None) -> None:
        super().__init__(config, imgsz or _fixed_size(config))
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover
            raise DetectorError("the onnxruntime backend needs the 'edge' extra") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = default_threads(config.threads)
        try:
            self._session = ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DetectorError(f"cannot load ONNX model {weights}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        if isinstance(inp.shape[2], int) and isinstance(inp.shape[3], int):
            fixed = (inp.shape[2], inp.shape[3])
            if fixed != size_hw(self.imgsz):
                log.warning("ONNX model %s has a fixed input of %s px; using it instead of %s",
                            weights, size_tag(fixed), size_tag(self.imgsz))
                self.imgsz = fixed[0] if fixed[0] == fixed[1] else fixed
        self.version = model_version(weights)

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: blob})[0])


class OpenVINODetector(_RawYoloDetector):
    """``streams`` > 1: several cameras call at once; the runtime then runs that many requests side by side on
    a thread each, which costs less CPU per frame than threads taking turns (figures: bench/edge_throughput.py)."""

    def __init__(self, weights: Path, config: ModelConfig, imgsz: Size | None = None, streams: int = 1) -> None:
        super().__init__(config, imgsz or _fixed_size(config))
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover
            raise DetectorError("the openvino backend needs the 'edge' extra") from exc
        xml = weights if weights.suffix == ".xml" else next(iter(sorted(weights.glob("*.xml"))), None)
        if xml is None:
            raise DetectorError(f"no OpenVINO .xml model in {weights}")
        core = ov.Core()
        try:
            model = core.read_model(str(xml))
            shape = model.input(0).get_partial_shape()
            static = shape.rank.is_static and shape[2].is_static and shape[3].is_static
            exported = (shape[2].get_length(), shape[3].get_length()) if static else None
            want = size_hw(self.imgsz)
            if exported != want:
                try:
                    model.reshape([1, 3, *want])
                except Exception as exc:  # an IR exported with fixed internal shapes cannot be resized
                    if exported is None:
                        raise
                    log.warning("OpenVINO model %s cannot be reshaped to %s px (%s); using its %s px",
                                xml, size_tag(want), str(exc).splitlines()[0][:200], size_tag(exported))
                    model = core.read_model(str(xml))
                    self.imgsz = exported[0] if exported[0] == exported[1] else exported
            model = self._embed_preprocessing(ov, model)
            threads = default_threads(config.threads)
            props: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
            if streams > 1 and threads > 1:
                props.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(min(streams, threads))})
            self._compiled = core.compile_model(model, "CPU", props)
        except Exception as exc:
            raise DetectorError(f"cannot load OpenVINO model {xml}: {exc}") from exc
        self._output = self._compiled.output(0)
        self._local = threading.local()  # an infer request is not thread-safe: one per calling thread
        self.version = model_version(weights)

    @staticmethod
    def _embed_preprocessing(ov: ModuleType, model: openvino.Model) -> openvino.Model:
        """Take the letterboxed BGR uint8 image as it is (NHWC): OpenVINO converts, swaps and scales in the
        graph, so no float copy of the frame is made in Python."""
        from openvino.preprocess import ColorFormat, PrePostProcessor

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
            ColorFormat.BGR
        )
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
        return ppp.build()

    def _blob(self, img: np.ndarray) -> np.ndarray:
        return img[None]  # a view: (1, H, W, 3) uint8

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return np.asarray(request.infer({0: blob}, share_inputs=True)[self._output])


def _fixed_size(config: ModelConfig) -> int:
    """A configured square side; ``auto`` without a picture to follow is the models' own 640."""
    return config.imgsz if isinstance(config.imgsz, int) else AUTO_MAX_SIDE


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _backend_for(path: Path, backend: str) -> str:
    """``auto``: the fastest runtime installed that can run this file (OpenVINO, ONNX Runtime, PyTorch).

    A ``.pt`` goes to a native runtime only where Ultralytics is there to export it; an ``.onnx`` or an
    OpenVINO folder never needs torch."""
    if backend != "auto":
        return backend
    if path.is_dir() or path.suffix == ".xml":
        return "openvino"
    if path.suffix == ".onnx":
        return "openvino" if _installed("openvino") else "onnxruntime"
    if path.suffix == ".pt" and _installed("ultralytics"):
        if _installed("openvino"):
            return "openvino"
        if _installed("onnxruntime"):
            return "onnxruntime"
    return "ultralytics"


def input_size(config: ModelConfig, frame_hw: tuple[int, int] | None) -> Size:
    """The detector input for pictures of ``frame_hw`` (the region of interest's height and width)."""
    if isinstance(config.imgsz, int):
        return config.imgsz
    if frame_hw is None:
        return AUTO_MAX_SIDE
    h, w = auto_imgsz(*frame_hw)
    return h if h == w else (h, w)


def load_detector(config: ModelConfig, frame_hw: tuple[int, int] | None = None, streams: int = 1) -> Detector:
    """Build the configured backend for pictures of ``frame_hw`` (height, width; used by ``imgsz: auto``),
    called by ``streams`` cameras at once.

    ``auto`` picks the runtime (see ``_backend_for``); a ``.pt`` for OpenVINO or ONNX Runtime is exported
    at the input size once and cached (``vision.export``), so this may take a while the first time."""
    weights = resolve_weights(config.weights)
    backend = _backend_for(weights, config.backend)
    imgsz = input_size(config, frame_hw)
    if weights.suffix == ".pt" and backend in ("onnxruntime", "openvino"):
        # A native runtime from the checkpoint: the cached export at this size (built once, never committed).
        from vision.export import ExportError, export_model

        try:
            weights = export_model(weights, imgsz=imgsz, fmt="onnx" if backend == "onnxruntime" else "openvino")
        except ExportError as exc:
            raise DetectorError(str(exc)) from exc
    log.info("loading %s detector from %s (input %s)", backend, weights, size_tag(imgsz))
    if backend == "ultralytics":
        return UltralyticsDetector(weights, config, imgsz)
    if backend == "onnxruntime":
        return OnnxRuntimeDetector(weights, config, imgsz)
    if backend == "openvino":
        return OpenVINODetector(weights, config, imgsz, streams)
    raise DetectorError(f"unknown backend {backend!r}")
