"""``citywatch weights pull`` and ``samples pull``: fetch the model and clips from their public sources.

Both need internet; offline they fail with a message naming the environment variable that points
the product at files already on disk instead.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from citywatch.paths import DEFAULT_WEIGHTS_NAME, SAMPLES_ENV, WEIGHTS_ENV, samples_dir, weights_dir

Progress = Callable[[str, int, int | None], None]  # (label, bytes so far, total or None)

_GH = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the samples folder
    url: str
    sha256: str
    licence: str


#: The clips of sample_videos/README.md, pinned to the upstream commit and checked by hash.
SAMPLES: tuple[Sample, ...] = (
    Sample(
        "two_way_road/suburban_two_way_road.mp4",
        f"{_GH}/ahmetozlu/vehicle_counting_tensorflow/ce4e86107f36404cdb91c38bf8514983df5e5153/input_video.mp4",
        "87d003d524c98d463213b543544aad1a1f7c34f4e72a8c996a04fc38b0779dc6",
        "MIT (repository)",
    ),
    *(
        Sample(
            f"tfl_london_jamcam/{name}.mp4",
            f"{_GH}/dssg/air_pollution_estimation/0e4172e7cecd98b834d728a3a06e39f71c8cc7b2"
            f"/data/setup/annotations/videos/{name}.mp4",
            digest,
            "TfL open data (Powered by TfL Open Data); repository MIT",
        )
        for name, digest in (
            ("2019-06-28_13-02-35.503167_00001.03601",
             "785e5c59ff74e08eff3cd91097e318373f558e1bd9d51f2cc99a8f09a940aca2"),
            ("2019-06-28_13-02-51.477310_00001.07355",
             "0324dffa37d00a00f8e856e9bcd8684ff81a980109d40acb830890b234f0c655"),
            ("2019-06-28_13-03-07.370509_00001.06514",
             "169e192cbf5ee2b0108a6671668165cf6b316f8885a62e72cd65ae3bfe5251f6"),
        )
    ),
    Sample(
        "ua_detrac_beijing/ua_detrac_beijing_intersection.mp4",
        f"{_GH}/georgia-tech-db/evadb/e5a91909ab1774d531dd803697f92d5d95e3ccc7/data/ua_detrac/ua_detrac.mp4",
        "48bedf6f9d100ed91986b377cede77a7ade0e8d5210531c621e30a9af34bafbc",
        "UA-DETRAC CC BY-NC-SA 3.0 (research and testing only)",
    ),
)


class PullError(RuntimeError):
    pass


def _download(url: str, dest: Path, sha256: str | None, progress: Progress | None, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                done = 0
                while chunk := resp.read(1 << 16):
                    tmp.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(dest.name, done, total)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PullError(str(getattr(exc, "reason", exc))) from exc
    if sha256 and h.hexdigest() != sha256:
        Path(tmp.name).unlink(missing_ok=True)
        raise PullError(f"{url} downloaded, but its sha256 {h.hexdigest()} is not the expected {sha256}")
    shutil.move(tmp.name, dest)


def pull_samples(progress: Progress | None = None, timeout: float = 30.0) -> list[Path]:
    root = samples_dir()
    got = []
    for sample in SAMPLES:
        dest = root / sample.path
        if dest.is_file():
            got.append(dest)
            continue
        try:
            _download(sample.url, dest, sample.sha256, progress, timeout)
        except PullError as exc:
            raise PullError(
                f"cannot download {sample.path} ({exc}). Offline? Set {SAMPLES_ENV} to a folder of clips "
                f"laid out like shared/videos (e.g. {SAMPLES_ENV}=../shared/videos)."
            ) from None
        got.append(dest)
    return got


#: Fetches a release asset to the given path and returns the file it wrote (Ultralytics' downloader, passed
#: in by the command so that the base never imports a model library).
AssetDownloader = Callable[[Path], Path]


def pull_weights(
    progress: Progress | None = None, timeout: float = 30.0, downloader: AssetDownloader | None = None
) -> Path:
    """Download the official ``yolov8n.pt`` the way Ultralytics does (its GitHub release assets)."""
    dest = weights_dir() / DEFAULT_WEIGHTS_NAME
    if dest.is_file():
        return dest
    hint = f"Offline? Set {WEIGHTS_ENV} to a model on disk (e.g. ../shared/weights/yolov8n-coco-rebuilt.pt)."
    if downloader is not None:
        try:
            path = downloader(dest)
        except Exception as exc:  # ultralytics raises several types when offline
            raise PullError(f"cannot download {DEFAULT_WEIGHTS_NAME} ({exc}). {hint}") from None
        if not path.is_file():
            raise PullError(f"cannot download {DEFAULT_WEIGHTS_NAME}. {hint}")
        return path
    url = f"https://github.com/ultralytics/assets/releases/download/v8.3.0/{DEFAULT_WEIGHTS_NAME}"
    try:
        _download(url, dest, None, progress, timeout)
    except PullError as exc:
        raise PullError(f"cannot download {DEFAULT_WEIGHTS_NAME} ({exc}). {hint}") from None
    return dest
