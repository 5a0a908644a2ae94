"""The console's accounts over real HTTP: argon2id passwords (an old scrypt hash upgraded at login), the
reviewer and admin roles, reviewer accounts and exports managed in the browser, and a login throttle that
two console replicas on one database share."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
import time
import zipfile
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from cloud.review.auth import LoginThrottle
from cloud.storage.tables import review_items, reviewers
from harness.review import ConsoleThread, queue_garments, write_config
from seamline.clock import utcnow

pytestmark = pytest.mark.integration
DECISION = {
    "decision": "reject",
    "crops": [
        {"crop_id": "c0", "type": "hole", "severity": "severe"},
        {"crop_id": "c1", "type": "normal", "severity": "none"},
    ],
}


def _hash_of(console, reviewer_id: str) -> str:  # type: ignore[no-untyped-def]
    with console.service.audit.engine.connect() as conn:
        return conn.execute(
            sa.select(reviewers.c.password_hash).where(reviewers.c.reviewer_id == reviewer_id)
        ).scalar_one()


def test_passwords_are_argon2id_and_an_old_scrypt_hash_is_upgraded_at_login(console, login):
    login("alice")
    assert _hash_of(console, "alice").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # An account from before argon2id: the console's first hash format (scrypt, n=2^14).
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(b"old-password-1", salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    console.service.reviewers.add("bob", "placeholder-1")
    with console.service.audit.engine.begin() as conn:
        conn.execute(reviewers.update().where(reviewers.c.reviewer_id == "bob").values(password_hash=old))
    assert not console.service.reviewers.authenticate("bob", "wrong-password")
    assert _hash_of(console, "bob") == old  # a wrong password changes nothing
    bob = login("bob", "old-password-1")  # over HTTP
    assert bob.http.get("/api/queue").status_code == 200
    assert _hash_of(console, "bob").startswith("$argon2id$")
    assert console.service.reviewers.authenticate("bob", "old-password-1")


def test_reports_exports_and_accounts_are_for_admins(console, login):
    queue_garments(console.service.audit, console.service.crop_store, 1)
    alice = login("alice")
    item = alice.post("/api/take").json()["item_id"]
    assert alice.post(f"/api/items/{item}/decision", json=DECISION).status_code == 200
    for path in ("/report", "/api/report", "/report/charts/daily.png", "/admin/reviewers", "/admin/export"):
        answer = alice.http.get(path)
        assert answer.status_code == 403 and answer.json()["title"] == "Admins only", path
    assert 'href="/report"' not in alice.http.get("/").text

    ada = login("ada", role="admin")
    assert 'href="/admin/reviewers"' in ada.http.get("/").text
    assert ada.http.get("/report").status_code == 200
    page = ada.http.get("/admin/reviewers")
    assert page.status_code == 200 and 'data-reviewer="alice"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]

    # Add a reviewer in the browser; the new account logs in.
    added = ada.http.post(
        "/admin/reviewers",
        data={"csrf_token": csrf, "reviewer_id": "carol", "password": "carol-pass-1", "role": "reviewer"},
    )
    assert added.status_code == 303
    carol = login("carol", "carol-pass-1")
    assert carol.http.get("/api/queue").status_code == 200
    bad = ada.http.post(
        "/admin/reviewers", data={"csrf_token": csrf, "reviewer_id": "Bad Name", "password": "x" * 9}
    )
    assert bad.status_code == 422 and "reviewer id" in bad.json()["detail"]
    no_csrf = ada.http.post("/admin/reviewers/carol/deactivate", data={})
    assert no_csrf.status_code == 403
    assert (
        alice.http.post("/admin/reviewers/carol/deactivate", data={"csrf_token": alice.csrf}).status_code
        == 403
    )

    # Deactivate in the browser: the session ends at once; an admin cannot lock themselves out.
    assert ada.http.post("/admin/reviewers/carol/deactivate", data={"csrf_token": csrf}).status_code == 303
    assert carol.http.get("/api/queue").status_code == 401
    assert ada.http.post("/admin/reviewers/ada/deactivate", data={"csrf_token": csrf}).status_code == 409

    # The verified store as a zip, in the format seamline train classifier reads.
    export = ada.http.get("/admin/export?format=jsonl")
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        names = archive.namelist()
        lines = archive.read(next(n for n in names if n.endswith(".jsonl"))).decode().splitlines()
    assert any(n.startswith("images/") for n in names) and len(lines) == 2
    assert ada.http.get("/admin/export?format=yolo").status_code == 400


def _guess(base_url: str, name: str, password: str) -> int:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        return client.post(
            "/login", data={"csrf_token": token, "reviewer_id": name, "password": password}
        ).status_code


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_console_replicas_share_the_login_throttle(tmp_path, mqtt_broker, request, database):
    """Guesses spread over two consoles on one database count together: the sixth is refused on either."""
    audit_url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    config = write_config(
        tmp_path / "seamline.yaml", mqtt_url=mqtt_broker.url, data_dir=tmp_path / "data", audit_url=audit_url
    )
    first, second = ConsoleThread(config).start(), ConsoleThread(config).start()
    try:
        first.service.reviewers.add("alice", "review-pass-1")
        codes = [_guess((first, second)[n % 2].url, "alice", f"guess-{n}") for n in range(5)]
        assert codes == [401] * 5
        assert _guess(second.url, "alice", "review-pass-1") == 429
        assert _guess(first.url, "alice", "review-pass-1") == 429
        assert _guess(first.url, "someone-else", "guess") == 401  # per name
    finally:
        first.stop()
        second.stop()


def test_the_throttle_window_ends_and_a_success_clears_it(console):
    throttle = LoginThrottle(console.service.audit.engine, limit=2, window_s=0.5)
    assert [throttle.attempt("dave") for _ in range(2)] == [0.0, 0.0]
    assert throttle.attempt("dave") > 0
    time.sleep(0.6)
    assert throttle.attempt("dave") == 0.0  # a new window
    throttle.succeeded("dave")
    assert [throttle.attempt("dave") for _ in range(2)] == [0.0, 0.0]


def _metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and set(labels.items()) <= set(s.labels.items())
    )


def test_the_console_metrics_move_with_the_queue(console, login):
    queue_garments(console.service.audit, console.service.crop_store, 3, priorities=("high", "low", "low"))
    scrape = lambda: httpx.get(f"{console.url}/metrics", timeout=10).text  # noqa: E731 - no session needed
    before = scrape()
    assert _metric(before, "seamline_review_queue_depth", priority="high") == 1
    assert _metric(before, "seamline_review_queue_depth", priority="low") == 2
    assert _metric(before, "seamline_review_oldest_waiting_seconds") > 0
    alice = login("alice")
    item = alice.post("/api/take").json()["item_id"]
    assert _metric(scrape(), "seamline_review_in_review") == 1
    assert alice.post(f"/api/items/{item}/decision", json=DECISION).status_code == 200
    after = scrape()
    assert _metric(after, "seamline_review_decisions_total", reviewer="alice") == 1
    assert (
        _metric(after, "seamline_review_queue_depth") == 2
        and _metric(after, "seamline_review_in_review") == 0
    )
    # a reviewer who goes quiet: the lease expires and the item returns to the queue
    bob = login("bob")
    bob.post("/api/take")
    with console.service.audit.engine.begin() as conn:
        conn.execute(
            review_items.update()
            .where(review_items.c.claimed_by == "bob")
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    console.service.expire()
    assert _metric(scrape(), "seamline_review_lease_expiries_total") == 1
