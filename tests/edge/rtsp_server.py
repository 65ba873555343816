"""A tiny RTSP server for the edge tests (GStreamer's gst-rtsp-server, Debian packages).

Run with the *system* Python, which has the GObject bindings (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``):
``/usr/bin/python3 rtsp_server.py PORT [FPS]`` serves a live MJPEG test pattern at
``rtsp://127.0.0.1:PORT/cam`` and prints ``READY`` once it listens. Kill it to cut the stream,
SIGSTOP it to stall it, start it again to restore it.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port = int(sys.argv[1])
    fps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate={fps}/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("FAILED to bind", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
