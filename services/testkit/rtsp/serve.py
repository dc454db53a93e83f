#!/usr/bin/python3
"""A real RTSP camera for tests: GStreamer's RTSP server streaming H.264 at rtsp://127.0.0.1:PORT/live.

Run with Debian's /usr/bin/python3 (python3-gi and gir1.2-gst-rtsp-server-1.0; x264enc comes from
gstreamer1.0-plugins-ugly). It prints "ready PORT" on stdout once clients can connect.

Modes:
  live   GStreamer's server itself listens on PORT: 640x480, 10 fps, videotestsrc, H.264.
  stall  A camera that freezes: a proxy on PORT in front of the same server relays the RTSP
         conversation throughout, but drops the media (interleaved RTP/RTCP over TCP, the transport
         OpenCV asks for) once STALL_AFTER seconds have passed since the session's first media
         packet. The connection stays open and requests are still answered: only frames stop.
         With --stall-after 0 no media is ever sent: a camera that connects but shows nothing.
"""

import argparse
import signal
import socket
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)

# What LAUNCH needs, and the Debian package that brings it.
ELEMENTS = [
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
]


def rtsp_server(port):
    """GStreamer's RTSP server on loopback; port 0 picks a free one. Returns the bound port."""
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    # One pipeline per client: a new session starts from a fresh encoder (and a key frame).
    factory.set_shared(False)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    return server.get_bound_port()


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def relay_requests(client, upstream):
    """Client to server, untouched: requests, keep-alives and the client's RTCP."""
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            upstream.sendall(data)
    except OSError:
        pass
    for s in (client, upstream):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay_replies(upstream, client, stall_after):
    """Server to client, message by message: RTSP replies always, media only until the stall.

    On RTSP over TCP, media comes as '$', channel, 2-byte length, packet; everything else is an
    RTSP message: headers up to a blank line, then Content-Length bytes of body."""
    first_media = None
    buf = b""
    try:
        while True:
            head = read_exact(upstream, 1)
            if head is None:
                break
            if head == b"$":
                header = read_exact(upstream, 3)
                if header is None:
                    break
                packet = read_exact(upstream, int.from_bytes(header[1:3], "big"))
                if packet is None:
                    break
                now = time.monotonic()
                first_media = first_media or now
                # Read and dropped, so the server's pipeline never blocks on a full socket.
                if now - first_media < stall_after:
                    client.sendall(head + header + packet)
                continue
            buf = head
            while b"\r\n\r\n" not in buf:
                more = upstream.recv(1)
                if not more:
                    return
                buf += more
            length = 0
            for line in buf.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = read_exact(upstream, length) if length else b""
            if body is None:
                break
            client.sendall(buf + body)
    except OSError:
        pass
    finally:
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def stalling_proxy(port, upstream_port, stall_after):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Started again on the same port by the test right after the previous one was killed.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)

    def accept():
        while True:
            client, _ = listener.accept()
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
            for target, args in (
                (relay_requests, (client, upstream)),
                (relay_replies, (upstream, client, stall_after)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 0 if everything needed is installed")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mode", choices=["live", "stall"], default="live")
    parser.add_argument("--stall-after", type=float, default=2.0, help="seconds of media per session")
    args = parser.parse_args()

    Gst.init(None)
    for element, package in ELEMENTS:
        if Gst.ElementFactory.find(element) is None:
            sys.exit(f"GStreamer element {element} missing: install {package}")
    if args.check:
        return
    if args.port is None:
        parser.error("--port is required")
    if args.mode == "live":
        rtsp_server(args.port)
    else:
        stalling_proxy(args.port, rtsp_server(0), args.stall_after)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready {args.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
