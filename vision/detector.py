"""Object detectors: Ultralytics (``.pt``), and native ONNX Runtime / OpenVINO runtimes that need no torch.

Every backend returns the same thing: ``Detections`` in source-frame pixels with citywatch classes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from citywatch.config import ModelConfig
from citywatch.contract import CLASS_NAMES
from citywatch.paths import resolve_weights
from vision.detections import Detections

log = logging.getLogger(__name__)

#: COCO class index -> citywatch class name (COCO order as in Ultralytics' coco.yaml).
COCO_TO_CLASS: dict[int, str] = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}


class Detector(Protocol):
    version: str

    def detect(self, frame: np.ndarray) -> Detections: ...


class DetectorError(RuntimeError):
    """The model cannot be loaded or run; the message says which file and why."""


def _coco_lookup(classes: list[str]) -> tuple[list[int], np.ndarray]:
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


class UltralyticsDetector:
    """Any model Ultralytics loads (``.pt``, ``.onnx``, OpenVINO folder), run through ``YOLO.predict``."""

    def __init__(self, weights: Path, config: ModelConfig) -> None:
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

    def detect(self, frame: np.ndarray) -> Detections:
        r = self._model.predict(
            frame,
            imgsz=self.config.imgsz,
            conf=self.config.confidence,
            iou=self.config.iou,
            classes=self._coco_ids,
            agnostic_nms=self.config.agnostic_nms,
            device=self.config.device,
            verbose=False,
        )[0]
        boxes = r.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        cls = self._lut[boxes.cls.cpu().numpy().astype(np.int64)]
        keep = cls >= 0
        return Detections(boxes.xyxy.cpu().numpy()[keep], boxes.conf.cpu().numpy()[keep], cls[keep])


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to ``size``x``size`` (grey 114, as Ultralytics does)."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else frame
    top = (size - nh) // 2
    left = (size - nw) // 2
    # one allocation: the resized frame copied once into its grey border
    out = cv2.copyMakeBorder(
        resized, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    return out, scale, (left, top)


class _RawYoloDetector:
    """Shared pre- and post-processing for runtimes that return the raw (1, 84, N) YOLOv8 head."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._coco_ids, self._lut = _coco_lookup(config.classes)
        self.imgsz = config.imgsz

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
            keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.config.confidence, self.config.iou)
        else:
            keep = cv2.dnn.NMSBoxesBatched(
                xywh.tolist(), scores.tolist(), coco.tolist(), self.config.confidence, self.config.iou
            )
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        return Detections(xyxy[keep], scores[keep], self._lut[coco[keep]])


class OnnxRuntimeDetector(_RawYoloDetector):
    def __init__(self, weights: Path, config: ModelConfig) -> None:
        super().__init__(config)
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
        fixed = inp.shape[2] if isinstance(inp.shape[2], int) else None
        if fixed and fixed != config.imgsz:
            log.warning("ONNX model %s has a fixed input of %d px; using it instead of imgsz=%d",
                        weights, fixed, config.imgsz)
            self.imgsz = fixed
        self.version = model_version(weights)

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: blob})[0]


class OpenVINODetector(_RawYoloDetector):
    def __init__(self, weights: Path, config: ModelConfig) -> None:
        super().__init__(config)
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
            exported = shape[2].get_length() if shape.rank.is_static and shape[2].is_static else None
            if exported != config.imgsz:
                try:
                    model.reshape([1, 3, config.imgsz, config.imgsz])
                except Exception as exc:  # an IR exported with fixed internal shapes cannot be resized
                    if exported is None:
                        raise
                    log.warning("OpenVINO model %s cannot be reshaped to %d px (%s); using its %d px",
                                xml, config.imgsz, str(exc).splitlines()[0][:200], exported)
                    model = core.read_model(str(xml))
                    self.imgsz = exported
            model = self._embed_preprocessing(ov, model)
            self._compiled = core.compile_model(
                model, "CPU", {"INFERENCE_NUM_THREADS": default_threads(config.threads)}
            )
        except Exception as exc:
            raise DetectorError(f"cannot load OpenVINO model {xml}: {exc}") from exc
        self._output = self._compiled.output(0)
        self._local = threading.local()  # an infer request is not thread-safe: one per calling thread
        self.version = model_version(weights)

    @staticmethod
    def _embed_preprocessing(ov, model):  # noqa: ANN001, ANN205
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
        return request.infer({0: blob}, share_inputs=True)[self._output]


def _backend_for(path: Path, backend: str) -> str:
    if backend != "auto":
        return backend
    if path.is_dir() or path.suffix == ".xml":
        return "openvino"
    if path.suffix == ".onnx":
        return "onnxruntime"
    return "ultralytics"


def load_detector(config: ModelConfig) -> Detector:
    """Build the configured backend; ``auto`` picks by file type (.pt, .onnx, OpenVINO folder)."""
    weights = resolve_weights(config.weights)
    backend = _backend_for(weights, config.backend)
    if weights.suffix == ".pt" and backend in ("onnxruntime", "openvino"):
        # A native runtime from the checkpoint: the cached export at this size (built once, never committed).
        from vision.export import ExportError, export_model

        try:
            weights = export_model(weights, imgsz=config.imgsz, fmt="onnx" if backend == "onnxruntime" else "openvino")
        except ExportError as exc:
            raise DetectorError(str(exc)) from exc
    log.info("loading %s detector from %s (imgsz %d)", backend, weights, config.imgsz)
    if backend == "ultralytics":
        return UltralyticsDetector(weights, config)
    if backend == "onnxruntime":
        return OnnxRuntimeDetector(weights, config)
    if backend == "openvino":
        return OpenVINODetector(weights, config)
    raise DetectorError(f"unknown backend {backend!r}")
