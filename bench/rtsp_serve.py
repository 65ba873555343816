"""H.264 camera streams for the benches: encode a clip at a camera's resolution, serve it over RTSP in real time.

Run with the *system* Python (GStreamer's GObject bindings, Debian's ``python3-gi``,
``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-ugly`` for x264enc); there is no ffmpeg here.

    /usr/bin/python3 bench/rtsp_serve.py encode CLIP.mp4 OUT.h264 WIDTH HEIGHT KBPS
    /usr/bin/python3 bench/rtsp_serve.py serve PORT FPS OUT1.h264 [OUT2.h264 ...]

``encode`` upscales (videoscale) and re-encodes as a camera's main stream does: H.264 main profile,
no B-frames, a key frame every 2 s, a constant bit rate, SPS/PPS before every key frame; as fast as
the CPU goes, once (the bench caches the result), so that serving costs the box almost nothing.
``serve`` reads each file's access units into memory and serves file *i* at ``rtsp://127.0.0.1:PORT/si``,
looped forever, one access unit every ``1/FPS`` s of wall clock (the camera's own pace, whatever the
client does); it prints ``READY`` once it listens.
"""

import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def run_to_eos(pipeline: Gst.Pipeline) -> None:
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        raise SystemExit(f"gstreamer: {err.message} ({debug})")


def encode(src: str, out: str, width: int, height: int, kbps: int) -> None:
    run_to_eos(Gst.parse_launch(
        f'filesrc location="{src}" ! decodebin ! videoconvert ! videoscale method=bilinear '
        f"! video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1 "
        f"! x264enc speed-preset=superfast bframes=0 key-int-max=50 bitrate={kbps} "
        "! video/x-h264,profile=main ! h264parse config-interval=-1 "
        f'! video/x-h264,stream-format=byte-stream,alignment=au ! filesink location="{out}"'
    ))


def access_units(path: str) -> tuple[list[bytes], str]:
    """Every access unit of an Annex-B file, in order, and the caps h264parse gives them."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au '
        "! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[bytes] = []
    caps = ""
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        if not caps:
            caps = sample.get_caps().to_string()
        buf = sample.get_buffer()
        units.append(buf.extract_dup(0, buf.get_size()))
    pipeline.set_state(Gst.State.NULL)
    if not units:
        raise SystemExit(f"{path}: no H.264 access units")
    return units, caps


class Feeder:
    """Pushes one stream's access units into a media's appsrc at the camera's pace, looping."""

    def __init__(self, units: list[bytes], fps: int) -> None:
        self.units, self.fps = units, fps

    def media_configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name("src")
        stop = threading.Event()
        media.connect("unprepared", lambda *_: stop.set())
        threading.Thread(target=self.feed, args=(src, stop), daemon=True).start()

    def feed(self, src: Gst.Element, stop: threading.Event) -> None:
        period = 1.0 / self.fps
        dur = Gst.SECOND // self.fps
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            delay = t0 + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            buf = Gst.Buffer.new_wrapped(self.units[k % len(self.units)])
            buf.pts = buf.dts = k * dur
            buf.duration = dur
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return
            k += 1


def serve(port: int, fps: int, paths: list[str]) -> None:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    feeders = []
    for i, path in enumerate(paths):
        units, caps = access_units(path)
        caps = caps.replace("framerate=(fraction)0/1", f"framerate=(fraction){fps}/1")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( appsrc name=src is-live=true format=time do-timestamp=false caps="{caps}" '
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(True)
        feeder = Feeder(units, fps)
        factory.connect("media-configure", feeder.media_configure)
        feeders.append(feeder)
        server.get_mount_points().add_factory(f"/s{i}", factory)
    if server.attach(None) == 0:
        print("FAILED to bind", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


def main() -> None:
    Gst.init(None)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "encode":
        encode(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "serve":
        serve(int(args[0]), int(args[1]), args[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
