"""The classifier's server pool, as pure logic: least loaded first, failover, take-out and probe back in.
(httpx's MockTransport stands in for the servers; the real two-server run is in tests/integration.)"""

import asyncio

import httpx
import pytest

from cloud.classifiers.servers import Server, ServerPool, TransientError


def _pool(handlers: dict[str, object], **kwargs) -> ServerPool:
    servers = [
        Server(url, httpx.AsyncClient(base_url=url, transport=httpx.MockTransport(handler)))
        for url, handler in handlers.items()
    ]
    return ServerPool(servers, **kwargs)


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True}) if request.url.path != "/health" else httpx.Response(200)


def test_requests_spread_over_servers_in_turn():
    pool = _pool({"http://a/v1": _ok, "http://b/v1": _ok})

    async def run():
        return [(await pool.post("/chat/completions", {}))[0].base_url for _ in range(6)]

    used = asyncio.run(run())
    assert used.count("http://a/v1") == 3 and used.count("http://b/v1") == 3


def test_a_failing_server_is_taken_out_and_the_request_goes_to_the_other():
    state = {"b_up": False}

    def b(request: httpx.Request) -> httpx.Response:
        if not state["b_up"]:
            raise httpx.ConnectError("refused")
        return _ok(request)

    pool = _pool({"http://a/v1": _ok, "http://b/v1": b}, backoff_s=0.05, backoff_max_s=0.05)

    async def run():
        used = [(await pool.post("/chat/completions", {}))[0].base_url for _ in range(4)]
        assert pool.servers[1].down_until is not None and pool.servers[1].failures == 1
        state["b_up"] = True
        await asyncio.sleep(0.06)  # the backoff ends: the next pick probes /health
        used += [(await pool.post("/chat/completions", {}))[0].base_url for _ in range(4)]
        return used

    used = asyncio.run(run())
    assert used[:4] == ["http://a/v1"] * 4
    assert "http://b/v1" in used[4:] and pool.servers[1].down_until is None


def test_every_server_down_is_one_transient_error_naming_each():
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    pool = _pool({"http://a/v1": down, "http://b/v1": down})
    with pytest.raises(TransientError, match=r"http://a/v1: HTTP 503.*http://b/v1: HTTP 503"):
        asyncio.run(pool.post("/chat/completions", {}))
    with pytest.raises(TransientError, match="out of service"):
        asyncio.run(pool.post("/chat/completions", {}))


def test_a_single_url_is_never_taken_out():
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503) if len(calls) == 1 else httpx.Response(200, json={})

    pool = _pool({"http://router/v1": flaky})
    with pytest.raises(TransientError):
        asyncio.run(pool.post("/chat/completions", {}))
    assert asyncio.run(pool.post("/chat/completions", {}))[1].status_code == 200
