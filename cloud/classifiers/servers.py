"""Several vLLM servers behind one classifier: least loaded first, a failing one taken out and probed back in.

``cloud.classifier.base_url`` may list servers. Each request goes to the healthy server with the fewest
requests in flight (ties in turn). A server whose request fails in transport, times out or answers 429/5xx is
taken out for a backoff (doubling up to ``backoff_max_s``) and the request is tried on another at once; a
server taken out is probed on vLLM's ``/health`` when its backoff ends and comes back when it answers 200.
With one URL (a single server, or a router such as vLLM's production-stack router in front of many), this is
a plain client of that URL.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure another try (on this or another server) may not have: connection, timeout, 429, 5xx."""


@dataclass
class Server:
    """One OpenAI-compatible endpoint and what the pool knows of it."""

    base_url: str
    client: httpx.AsyncClient
    in_flight: int = 0
    requests: int = 0  # answered (any HTTP status below 500 but 429)
    failures: int = 0  # transient failures, all time
    down_until: float | None = None  # time.monotonic(); None: in service
    backoff_s: float = 0.0
    last_error: str | None = None

    @property
    def health_url(self) -> str:
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        return f"{root}/health"


@dataclass
class ServerPool:
    """The classifier's servers. ``post`` picks one; ``aclose`` closes their connections."""

    servers: list[Server]
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    # Called with (server base URL, seconds, answered) after every request: metrics.
    observe: Callable[[str, float, bool], None] | None = None
    _turn: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def from_urls(
        cls,
        urls: list[str],
        *,
        timeout_s: float,
        max_connections: int,
        headers: dict[str, str],
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        observe: Callable[[str, float, bool], None] | None = None,
    ) -> ServerPool:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        servers = [
            Server(
                url.rstrip("/"),
                httpx.AsyncClient(
                    base_url=url.rstrip("/"), timeout=httpx.Timeout(timeout_s), headers=headers, limits=limits
                ),
            )
            for url in urls
        ]
        return cls(servers, backoff_s, backoff_max_s, observe)

    async def aclose(self) -> None:
        await asyncio.gather(*(s.client.aclose() for s in self.servers))

    async def _probe(self, server: Server) -> None:
        """A server past its backoff: back in service if its /health answers 200, else a longer backoff."""
        try:
            response = await server.client.get(server.health_url, timeout=2.0)
            healthy = response.status_code == 200
            why = f"health answered HTTP {response.status_code}"
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            healthy, why = False, f"{type(exc).__name__}: {exc}"
        if healthy:
            logger.info("classifier server %s is healthy again: back in service", server.base_url)
            server.down_until, server.backoff_s = None, 0.0
        else:
            self._take_out(server, why)

    def _take_out(self, server: Server, error: str) -> None:
        server.backoff_s = min(self.backoff_max_s, max(self.backoff_s, server.backoff_s * 2))
        first = server.down_until is None
        server.down_until = time.monotonic() + server.backoff_s
        server.last_error = error
        if first:
            logger.warning(
                "classifier server %s taken out of service for %.1f s: %s",
                server.base_url,
                server.backoff_s,
                error,
            )

    async def _pick(self, tried: set[str]) -> Server | None:
        if len(self.servers) == 1:  # one URL (a server or a router): nothing to fail over to, always try it
            (only,) = self.servers
            return None if only.base_url in tried else only
        now = time.monotonic()
        due = [
            s
            for s in self.servers
            if s.down_until is not None and s.down_until <= now and s.base_url not in tried
        ]
        if due:
            await asyncio.gather(*(self._probe(s) for s in due))
        ready = [s for s in self.servers if s.down_until is None and s.base_url not in tried]
        if not ready:
            return None
        turn = next(self._turn)
        return min(ready, key=lambda s: (s.in_flight, (self.servers.index(s) - turn) % len(self.servers)))

    def _observe(self, server: Server, started: float, ok: bool) -> None:
        if self.observe is not None:
            self.observe(server.base_url, time.perf_counter() - started, ok)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[Server, httpx.Response]:
        """POST to the least loaded server in service, moving on to the next on a transient failure.

        Raises TransientError when every server failed or none is in service.
        """
        tried: set[str] = set()
        errors = []
        while (server := await self._pick(tried)) is not None:
            tried.add(server.base_url)
            server.in_flight += 1
            started = time.perf_counter()
            try:
                response = await server.client.post(path, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code != 429 and response.status_code < 500:
                    server.requests += 1
                    self._observe(server, started, True)
                    return server, response
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            finally:
                server.in_flight -= 1
            self._observe(server, started, False)
            server.failures += 1
            server.last_error = error
            if len(self.servers) > 1:
                self._take_out(server, error)
            errors.append(f"{server.base_url}: {error}")
        if not errors:
            errors = [f"{s.base_url}: out of service ({s.last_error})" for s in self.servers]
        raise TransientError("; ".join(errors))
