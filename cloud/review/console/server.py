"""Serve the console with uvicorn; on shutdown, end the live (SSE) streams first so it need not wait."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from cloud.review.console.app import create_app
from cloud.review.service import ReviewService


class ConsoleServer(uvicorn.Server):
    """A uvicorn server for one ReviewService; ``stop()`` (any thread) or SIGTERM/SIGINT end it."""

    def __init__(
        self, service: ReviewService, *, host: str, port: int, on_ready: Callable[[str], None] | None = None
    ) -> None:
        self.service = service
        self.on_ready = on_ready
        super().__init__(
            uvicorn.Config(
                create_app(service),
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=10,
            )
        )

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready(f"http://{self.config.host}:{self.bound_port}")

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.service.watch.close()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM after a graceful shutdown, so the process would die "by signal"; a console
        # that drained cleanly exits 0 instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self.service.watch.close()
        self.should_exit = True

    @property
    def bound_port(self) -> int:
        return self.servers[0].sockets[0].getsockname()[1]
