"""A real MJPEG-over-HTTP camera for the video source's tests: stdlib ``http.server``, JPEGs from OpenCV.

``GET /stream.mjpg`` answers ``multipart/x-mixed-replace`` with one JPEG part per frame at ``fps``: what IP
cameras and ``ffmpeg -f mpjpeg`` serve, and what OpenCV's FFmpeg backend reads. ``stop()`` closes the
listening socket *and* every open stream (a camera that loses power); ``start()`` again binds the same port,
so a client that reconnects finds the camera back where it was.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "seamlineframe"


class MjpegServer:
    """One camera on 127.0.0.1: ``url`` streams numbered frames (frame n is all grey level n % 256)."""

    def __init__(self, *, fps: float = 25.0, size: tuple[int, int] = (96, 64), port: int = 0) -> None:
        self.fps = fps
        self.width, self.height = size
        self.port = port
        self.connections = 0  # streams served since construction
        self.frames_sent = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._streaming = 0  # streams being written now
        self._frozen = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _frame(self, n: int) -> bytes:
        ok, jpeg = cv2.imencode(".jpg", np.full((self.height, self.width, 3), n % 256, np.uint8))
        assert ok
        return jpeg.tobytes()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class StreamHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the stream ends when the connection does

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache, no-store")
                self.end_headers()
                with camera._lock:
                    camera.connections += 1
                    camera._streaming += 1
                n, period = 0, 1.0 / camera.fps
                try:
                    while not camera._closing.is_set():
                        if camera._frozen.is_set():  # connected, headers sent, and nothing more
                            camera._closing.wait(period)
                            continue
                        jpeg = camera._frame(n)
                        head = (
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        )
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        with camera._lock:
                            camera.frames_sent += 1
                        n += 1
                        camera._closing.wait(period)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away
                finally:
                    with camera._lock:
                        camera._streaming -= 1

        return StreamHandler

    def start(self) -> MjpegServer:
        """Listen (on the port of the last start, once there was one) and serve streams."""
        self._closing.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())  # SO_REUSEADDR is set
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"mjpeg-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end every stream: clients see the stream end, then connection refused."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        # Handler threads are daemons the server does not join: wait until each has left its stream (the
        # connection is closed right after).
        deadline = time.monotonic() + 5
        while self._streaming and time.monotonic() < deadline:
            time.sleep(0.01)

    def freeze(self) -> None:
        """Keep every connection (and accept new ones) but send no more frames: a camera that hangs."""
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_frames(server: MjpegServer, count: int, timeout: float = 10.0) -> bool:
    """True once ``count`` more frames than now have been sent."""
    target = server.frames_sent + count
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.frames_sent >= target:
            return True
        time.sleep(0.01)
    return False
