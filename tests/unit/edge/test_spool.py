"""The spool's send order (live garments first), survives reopening (and SIGKILL), enforces its bound."""

import multiprocessing
import os
import signal
import sqlite3
import time

import pytest

from edge.uplink.spool import FullPolicy, RecordKind, Spool, SpoolFull

NOW = 1_000_000.0


def _ids(spool: Spool, live_after: float = NOW, **kwargs) -> list[str]:
    return [g.item_id for g in spool.in_send_order(live_after, **kwargs)]


def test_put_send_order_ack(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        for i in range(5):
            assert spool.put(f"g{i}", b"x" * i).accepted
        assert _ids(spool) == [f"g{i}" for i in range(5)]
        assert spool.ack("g2") and not spool.ack("g2")
        assert _ids(spool) == ["g0", "g1", "g3", "g4"]
        assert _ids(spool, skip={"g0", "g3"}, limit=2) == ["g1", "g4"]
        assert spool.depth() == (4, 0 + 1 + 3 + 4)


def test_live_garments_first_by_deadline_then_the_backlog_oldest_first(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        deadlines = {
            "b0": NOW - 30,  # backlog: deadline passed, fail-safe command already out
            "l-late": NOW + 9,  # live, deadline far
            "b1": NOW - 20,
            "near": NOW,  # exactly at live_after: no time left for a verdict, so backlog
            "l-soon": NOW + 2,  # live, deadline first
            "old": None,  # spooled without a deadline: backlog
            "l-mid": NOW + 5,
            "b2": NOW - 10,
        }
        for item_id, deadline in deadlines.items():
            spool.put(item_id, item_id.encode(), deadline_at=deadline)
        order = spool.in_send_order(NOW)
        assert [g.item_id for g in order] == ["l-soon", "l-mid", "l-late", "b0", "b1", "near", "old", "b2"]
        assert [(g.payload, g.deadline_at) for g in order[:2]] == [(b"l-soon", NOW + 2), (b"l-mid", NOW + 5)]
        # The window is partly in flight: the next ones in the same order; a small window takes the first.
        assert _ids(spool, skip={"l-soon", "b0"}, limit=3) == ["l-mid", "l-late", "b1"]
        assert _ids(spool, limit=2) == ["l-soon", "l-mid"]
        # Time moves on: l-soon's deadline is now too close, so it joins the backlog in capture order.
        assert _ids(spool, NOW + 3) == ["l-mid", "l-late", "b0", "b1", "near", "l-soon", "old", "b2"]


def test_a_garment_captured_while_the_backlog_drains_goes_next(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        for i in range(100):
            spool.put(f"b{i:03d}", b"x", deadline_at=NOW - 100 + i * 0.1)
        in_flight = set(_ids(spool, limit=8))
        spool.put("new", b"x", deadline_at=NOW + 3)
        assert _ids(spool, skip=in_flight, limit=1) == ["new"]


def test_spool_from_before_deadlines_were_kept_is_upgraded(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE garments (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE, "
            "payload BLOB NOT NULL, size INTEGER NOT NULL, enqueued_at REAL NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute("INSERT INTO garments (item_id, payload, size, enqueued_at) VALUES ('old', x'00', 1, 0)")
    with Spool(path) as spool:
        spool.put("live", b"x", deadline_at=NOW + 5)
        assert [(g.item_id, g.deadline_at) for g in spool.in_send_order(NOW)] == [
            ("live", NOW + 5),
            ("old", None),
        ]


def test_duplicate_put_is_idempotent(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g", b"a")
        result = spool.put("g", b"b")
        assert result.duplicate and len(spool) == 1
        assert spool.in_send_order(NOW)[0].payload == b"a"


def test_reopen_keeps_everything(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g1", b"1")
        spool.put("g2", b"2")
        spool.ack("g1")
    with Spool(tmp_path / "s.db") as spool:
        assert [(g.item_id, g.payload) for g in spool.in_send_order(NOW)] == [("g2", b"2")]


def test_a_drop_record_is_spooled_beside_garments_with_its_kind(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g1", b"garment")
        spool.put("d1", b"drop", RecordKind.DROPPED)
        # one record per item id: a drop record for a garment already spooled stores nothing
        assert spool.put("g1", b"drop of g1", RecordKind.DROPPED).duplicate
    with Spool(tmp_path / "s.db") as spool:
        pending = spool.in_send_order(time.time())
        assert [(g.item_id, g.kind, g.payload) for g in pending] == [
            ("g1", RecordKind.GARMENT, b"garment"),
            ("d1", RecordKind.DROPPED, b"drop"),
        ]
        assert spool.kind_of("d1") is RecordKind.DROPPED and spool.kind_of("g1") is RecordKind.GARMENT
        assert spool.ack("d1") and spool.kind_of("d1") is None


def test_a_spool_written_before_drop_records_opens_with_its_garments(tmp_path):
    # The schema an older agent left on disk, with a garment still waiting for its ack.
    db = sqlite3.connect(tmp_path / "s.db")
    db.executescript(
        "CREATE TABLE garments (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE, "
        "payload BLOB NOT NULL, size INTEGER NOT NULL, enqueued_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO garments (item_id, payload, size, enqueued_at) VALUES ('old', x'01', 1, 0);"
    )
    db.close()
    with Spool(tmp_path / "s.db") as spool:
        spool.put("new", b"drop", RecordKind.DROPPED)
        assert [(g.item_id, g.kind) for g in spool.in_send_order(time.time())] == [
            ("old", RecordKind.GARMENT),
            ("new", RecordKind.DROPPED),
        ]


def _fill_then_die(path: str, ready) -> None:
    spool = Spool(__import__("pathlib").Path(path))
    for i in range(50):
        spool.put(f"g{i}", os.urandom(1000))
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_sigkill_after_put_loses_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_fill_then_die, args=(str(tmp_path / "s.db"), ready))
    proc.start()
    proc.join(60)
    assert ready.is_set() and proc.exitcode == -signal.SIGKILL
    with Spool(tmp_path / "s.db") as spool:
        assert _ids(spool, limit=100) == [f"g{i}" for i in range(50)]


def test_reject_new_when_full(tmp_path):
    with Spool(tmp_path / "s.db", max_items=2) as spool:
        spool.put("a", b"1")
        spool.put("b", b"2")
        with pytest.raises(SpoolFull, match="refusing c"):
            spool.put("c", b"3")
        assert _ids(spool) == ["a", "b"]


def test_drop_oldest_when_full(tmp_path):
    with Spool(tmp_path / "s.db", max_bytes=10, full_policy=FullPolicy.DROP_OLDEST) as spool:
        spool.put("a", b"x" * 4)
        spool.put("b", b"x" * 4)
        result = spool.put("c", b"x" * 4)
        assert result.evicted == ("a",)
        assert _ids(spool) == ["b", "c"]


def test_single_payload_over_the_whole_bound_is_refused(tmp_path):
    with Spool(tmp_path / "s.db", max_bytes=10, full_policy=FullPolicy.DROP_OLDEST) as spool:
        with pytest.raises(SpoolFull, match="more than the whole spool"):
            spool.put("big", b"x" * 11)
