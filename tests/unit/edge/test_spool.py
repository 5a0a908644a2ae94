"""The spool keeps order, survives reopening (and SIGKILL), and enforces its bound by policy."""

import multiprocessing
import os
import signal
import sqlite3

import pytest

from edge.uplink.spool import FullPolicy, RecordKind, Spool, SpoolFull


def test_put_pending_ack_in_order(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        for i in range(5):
            assert spool.put(f"g{i}", b"x" * i).accepted
        assert [g.item_id for g in spool.pending()] == [f"g{i}" for i in range(5)]
        assert spool.ack("g2") and not spool.ack("g2")
        rest = spool.pending()
        assert [g.item_id for g in rest] == ["g0", "g1", "g3", "g4"]
        assert [g.item_id for g in spool.pending(after_seq=rest[1].seq)] == ["g3", "g4"]
        assert spool.depth() == (4, 0 + 1 + 3 + 4)


def test_duplicate_put_is_idempotent(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g", b"a")
        result = spool.put("g", b"b")
        assert result.duplicate and len(spool) == 1
        assert spool.pending()[0].payload == b"a"


def test_reopen_keeps_everything(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g1", b"1")
        spool.put("g2", b"2")
        spool.ack("g1")
    with Spool(tmp_path / "s.db") as spool:
        assert [(g.item_id, g.payload) for g in spool.pending()] == [("g2", b"2")]


def test_a_drop_record_is_spooled_beside_garments_with_its_kind(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        spool.put("g1", b"garment")
        spool.put("d1", b"drop", RecordKind.DROPPED)
        # one record per item id: a drop record for a garment already spooled stores nothing
        assert spool.put("g1", b"drop of g1", RecordKind.DROPPED).duplicate
    with Spool(tmp_path / "s.db") as spool:
        pending = spool.pending()
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
        assert [(g.item_id, g.kind) for g in spool.pending()] == [
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
        assert [g.item_id for g in spool.pending(limit=100)] == [f"g{i}" for i in range(50)]


def test_reject_new_when_full(tmp_path):
    with Spool(tmp_path / "s.db", max_items=2) as spool:
        spool.put("a", b"1")
        spool.put("b", b"2")
        with pytest.raises(SpoolFull, match="refusing c"):
            spool.put("c", b"3")
        assert [g.item_id for g in spool.pending()] == ["a", "b"]


def test_drop_oldest_when_full(tmp_path):
    with Spool(tmp_path / "s.db", max_bytes=10, full_policy=FullPolicy.DROP_OLDEST) as spool:
        spool.put("a", b"x" * 4)
        spool.put("b", b"x" * 4)
        result = spool.put("c", b"x" * 4)
        assert result.evicted == ("a",)
        assert [g.item_id for g in spool.pending()] == ["b", "c"]


def test_single_payload_over_the_whole_bound_is_refused(tmp_path):
    with Spool(tmp_path / "s.db", max_bytes=10, full_policy=FullPolicy.DROP_OLDEST) as spool:
        with pytest.raises(SpoolFull, match="more than the whole spool"):
            spool.put("big", b"x" * 11)
