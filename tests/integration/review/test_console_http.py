"""The console over real HTTP: sessions, CSRF, acting only as yourself, clear problems, live updates, MQTT."""

import json
import re
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from cloud.records import DroppedGarmentRecord
from harness.review import queue_garments
from seamline.contract.messages import ReviewEvent
from seamline.contract.mqtt import LineTopics
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ALL_NORMAL = {
    "decision": "pass",
    "crops": [
        {"crop_id": "c0", "type": "normal", "severity": "none"},
        {"crop_id": "c1", "type": "normal", "severity": "none"},
    ],
}


def test_requests_without_a_session_are_refused(console):
    queue_garments(console.service.audit, console.service.crop_store, 1)
    anonymous = httpx.Client(base_url=console.url, follow_redirects=False)
    for path in ("/", "/items/rv-0000", "/report"):
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), path
    for method, path in [
        ("GET", "/api/queue"),
        ("GET", "/events"),
        ("GET", "/crops/rv-0000/c0"),
        ("POST", "/api/take"),
        ("POST", "/api/items/rv-0000/decision"),
        ("GET", "/report/charts/daily.png"),
    ]:
        answer = anonymous.request(method, path)
        assert answer.status_code == 401, path
        assert answer.headers["content-type"] == "application/problem+json"
    forged = httpx.Client(
        base_url=console.url, cookies={"seamline_session": "made-up"}, follow_redirects=False
    )
    assert forged.get("/api/queue").status_code == 401
    assert anonymous.get("/healthz").json()["status"] == "ok"


def test_wrong_passwords_and_unknown_reviewers_are_refused(console, login):
    login("alice")
    client = httpx.Client(base_url=console.url, follow_redirects=False)
    for who, password in [("alice", "not-her-password"), ("mallory", "review-pass-1")]:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        answer = client.post("/login", data={"csrf_token": token, "reviewer_id": who, "password": password})
        assert answer.status_code == 401 and "wrong password" in answer.text
        assert "seamline_session" not in answer.cookies


def test_forms_and_api_calls_need_the_sessions_csrf_token(console, login):
    queue_garments(console.service.audit, console.service.crop_store, 2)
    alice = login("alice")
    for answer in (
        alice.http.post("/take", data={}),
        alice.http.post("/take", data={"csrf_token": "guess"}),
        alice.http.post("/api/take"),
        alice.http.post("/api/take", headers={"X-CSRF-Token": "guess"}),
    ):
        assert answer.status_code == 403 and answer.json()["title"] == "CSRF check failed"
    assert console.service.queue.snapshot()["in_review"] == []  # nothing was taken
    # the login form is protected too (double-submit cookie)
    stranger = httpx.Client(base_url=console.url, follow_redirects=False)
    assert (
        stranger.post(
            "/login", data={"csrf_token": "x", "reviewer_id": "alice", "password": "review-pass-1"}
        ).status_code
        == 403
    )
    # and a token of one session is worthless in another
    bob = login("bob")
    assert bob.http.post("/api/take", headers={"X-CSRF-Token": alice.csrf}).status_code == 403
    assert alice.post("/api/take").status_code == 200


def test_a_reviewer_cannot_act_as_another(console, login):
    queue_garments(console.service.audit, console.service.crop_store, 2)
    alice, bob = login("alice"), login("bob")
    item = alice.post("/api/take").json()["item_id"]
    answer = bob.post(f"/api/items/{item}/decision", json=ALL_NORMAL)
    assert answer.status_code == 409 and "held by another reviewer" in answer.json()["detail"]
    answer = bob.post(f"/api/items/{item}/decision", json={**ALL_NORMAL, "reviewer_id": "alice"})
    assert answer.status_code == 403 and answer.json()["title"] == "Cannot act as another reviewer"
    assert bob.post(f"/api/items/{item}/release").status_code == 409
    form = {
        "csrf_token": bob.csrf,
        "reviewer_id": "alice",
        "decision": "pass",
        "type-c0": "normal",
        "severity-c0": "none",
        "type-c1": "normal",
        "severity-c1": "none",
    }
    assert bob.http.post(f"/items/{item}/decision", data=form).status_code == 403
    # alice's own decision goes through, in her name
    assert alice.post(f"/api/items/{item}/decision", json=ALL_NORMAL).status_code == 200
    assert console.service.queue.detail(item)["decision"]["reviewer_id"] == "alice"


def test_bad_input_gets_a_precise_problem_and_the_console_keeps_serving(console, login):
    queue_garments(console.service.audit, console.service.crop_store, 1)
    alice = login("alice")
    item = alice.post("/api/take").json()["item_id"]
    cases = [
        (b"{not json", 400, "Malformed JSON"),
        (json.dumps({"decision": "maybe", "crops": []}).encode(), 422, "decision"),
        (
            json.dumps({**ALL_NORMAL, "crops": ALL_NORMAL["crops"][:1]}).encode(),
            422,
            "no label for crop 'c1'",
        ),
        (
            json.dumps(
                {
                    **ALL_NORMAL,
                    "missed": [
                        {"view_index": 0, "box": [10, 10, 9999, 20], "type": "hole", "severity": "minor"}
                    ],
                }
            ).encode(),
            422,
            "missed[0].box",
        ),
    ]
    for body, status, text in cases:
        answer = alice.post(
            f"/api/items/{item}/decision", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert text in answer.json()["detail"] + answer.json()["title"]
    too_big = alice.post(
        f"/api/items/{item}/decision", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413 and too_big.json()["title"] == "Request too large"
    assert alice.http.get("/api/items/nope").status_code == 404
    assert alice.http.get(f"/crops/{item}/nope").status_code == 404
    assert alice.http.get("/api/report?week=2026-W48").status_code == 403  # reports are for admins
    assert login("ada", role="admin").http.get("/api/report?week=2026-99").status_code == 400
    assert alice.post(f"/api/items/{item}/decision", json=ALL_NORMAL).status_code == 200


def test_decisions_publish_review_events_and_the_final_verdict(console, login, recorder):
    queue_garments(console.service.audit, console.service.crop_store, 1)
    alice = login("alice")
    item = alice.post("/api/take").json()["item_id"]
    decision = {
        "decision": "reject",
        "note": "Hole at the hem.",
        "crops": [
            {"crop_id": "c0", "type": "hole", "severity": "severe"},
            {"crop_id": "c1", "type": "normal", "severity": "none"},
        ],
    }
    answer = alice.post(f"/api/items/{item}/decision", json=decision).json()
    assert wait_until(lambda: any(v["verdict_id"] == answer["verdict_id"] for v in recorder.verdicts), 15)
    verdict = next(v for v in recorder.verdicts if v["verdict_id"] == answer["verdict_id"])
    assert (verdict["source"], verdict["final"], verdict["decision"], verdict["reviewer_id"]) == (
        "review",
        True,
        "reject",
        "alice",
    )
    assert [(d["crop_id"], d["type"]) for d in verdict["defects"]] == [("c0", "hole"), ("c1", "normal")]
    assert wait_until(lambda: any(e["type"] == "end" for e in recorder.reviews), 10)
    kinds = [(e["type"], e["status"], e["reviewer_id"]) for e in recorder.reviews if e["item_id"] == item]
    assert kinds == [("update", "in_review", "alice"), ("end", "decided", "alice")]
    end = recorder.reviews[-1]
    assert end["decision"] == "reject" and end["verdict_id"] == answer["verdict_id"]
    assert wait_until(lambda: console.service.queue.unpublished() == [], 10)  # marked on the broker's ack


def test_the_queue_updates_live_over_server_sent_events(console, login, mqtt_broker):
    from seamline.comms.mqtt import MqttBus
    from seamline.config.models import MqttConfig

    alice = login("alice")
    snapshots: list[dict] = []
    events: list[str] = []
    stop = threading.Event()

    def listen() -> None:
        with alice.http.stream("GET", "/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if line.startswith("data: ") and events[-1] == "queue":
                    snapshots.append(json.loads(line[6:]))
                if stop.is_set():
                    return

    threading.Thread(target=listen, daemon=True).start()
    assert wait_until(lambda: len(snapshots) >= 1, 10) and snapshots[0]["queued_total"] == 0
    # the classifier service queues a garment and sends a review event for it; the console hears it at once
    queue_garments(console.service.audit, console.service.crop_store, 1, prefix="live")
    cloud = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"fake-cloud-{time.time_ns()}", persistent_session=False
    )
    cloud.start()
    assert cloud.wait_connected(10)
    event = ReviewEvent(
        type="new",
        review_id="live-0000",
        item_id="live-0000",
        site_id="s1",
        line_id="l1",
        status="queued",
        priority="high",
    )
    cloud.publish(LineTopics(console.config.mqtt.topic_root, "s1", "l1").reviews, event.to_json())
    assert wait_until(lambda: snapshots[-1]["queued_total"] == 1, 5), (
        "no live update within 5 s (heartbeat is 15 s)"
    )
    assert snapshots[-1]["next"][0]["item_id"] == "live-0000"
    # another reviewer taking it shows up too
    bob = login("bob")
    bob.post("/api/take")
    assert wait_until(
        lambda: snapshots[-1]["in_review"] and snapshots[-1]["in_review"][0]["claimed_by"] == "bob", 5
    )
    # a stream outlives no session: once alice is deactivated, the next change ends hers
    console.service.reviewers.set_active("alice", False)
    bob.post("/api/items/live-0000/release")
    assert wait_until(lambda: events[-1] == "logout", 5), events[-3:]
    stop.set()
    cloud.stop()


def test_final_verdicts_not_acknowledged_are_published_at_the_next_start(tmp_path, mqtt_broker):
    from cloud.review.decision import HumanDecision
    from harness.review import ConsoleThread, write_config
    from tests.integration.review.conftest import LineRecorder

    config = write_config(tmp_path / "seamline.yaml", mqtt_url=mqtt_broker.url, data_dir=tmp_path / "data")
    first = ConsoleThread(
        config
    )  # not started: decide straight in the store, as if the process died before publishing
    queue_garments(first.service.audit, first.service.crop_store, 1)
    first.service.queue.take_next("alice")
    result = first.service.queue.decide("alice", "rv-0000", HumanDecision.model_validate(ALL_NORMAL))
    first.service.audit.engine.dispose()
    recorder = LineRecorder(mqtt_broker.url, first.config.mqtt.topic_root)
    console = ConsoleThread(config).start()
    try:
        assert wait_until(
            lambda: any(v["verdict_id"] == result.verdict.verdict_id for v in recorder.verdicts), 15
        )
        assert wait_until(lambda: console.service.queue.unpublished() == [], 10)
    finally:
        console.stop()
        recorder.stop()


def test_password_guessing_is_throttled_and_deactivation_ends_sessions(console, login):
    alice = login("alice")
    guesser = httpx.Client(base_url=console.url, follow_redirects=False)

    def attempt(password: str) -> httpx.Response:
        token = re.search(r'name="csrf_token" value="([^"]+)"', guesser.get("/login").text)[1]
        return guesser.post(
            "/login", data={"csrf_token": token, "reviewer_id": "alice", "password": password}
        )

    assert [attempt(f"guess-{n}").status_code for n in range(5)] == [401] * 5
    blocked = attempt("review-pass-1")  # even the right password waits now
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert alice.http.get("/api/queue").status_code == 200  # the real alice's session is unaffected
    console.service.reviewers.set_active("alice", False)
    assert alice.http.get("/api/queue").status_code == 401


def test_the_report_page_counts_the_garments_dropped_at_the_edge(console, login):
    captured = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # in ISO week 2026-W48
    record = DroppedGarmentRecord(
        "drop-1",
        "s1",
        "l1",
        "st1",
        "agent-1",
        captured,
        None,
        captured,
        captured,
        "detector_behind",
        "",
        "divert_review",
    )
    assert console.service.audit.record_drop(record)
    page = login("ada", role="admin").http.get("/report?week=2026-W48")
    assert page.status_code == 200
    assert 'id="garments-recorded">1<' in page.text and 'id="dropped-at-edge">1<' in page.text


def test_the_report_page_lists_the_learning_jobs(console, login):
    from cloud.learning import jobs

    engine = console.service.audit.engine
    job_id = jobs.claim(
        engine, "worker-1", ["1200 new verified labels (>= 1000)"], {"detector": {"state": "pending"}}
    )
    jobs.finish(
        engine,
        job_id,
        "failed",
        models={
            "detector": {
                "state": "failed",
                "version": "7",
                "gate": "fail",
                "failing": ["per_class[golden:hole]"],
            }
        },
    )
    page = login("ada", role="admin").http.get("/report?week=2026-W48")
    assert page.status_code == 200
    row = page.text.split(f'data-job="{job_id}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="state">failed</td>' in row and "1200 new verified labels" in row
    assert "detector v7: fail (per_class[golden:hole])" in row
    api = login("ada", role="admin").http.get("/api/report?week=2026-W48").json()
    assert api["learning_jobs"][0]["job_id"] == job_id and api["learning_jobs"][0]["state"] == "failed"


def test_the_report_page_shows_the_classifier_rollout_and_its_recommendation(console, login):
    from cloud.storage import rollouts
    from cloud.storage.rollout_state import Endpoint, RolloutState

    engine = console.service.audit.engine
    rollouts.write(
        engine,
        RolloutState(mode="canary", share=0.1, candidate=Endpoint(version="cls@9", model="c9"), set_by="ada"),
    )
    page = login("ada", role="admin").http.get("/report")
    assert page.status_code == 200
    assert "revision 1: canary 0.1, candidate cls@9" in page.text
    assert "Recommendation: <strong>keep</strong>" in page.text  # no verdicts of either arm yet
    api = login("ada", role="admin").http.get("/api/report").json()
    assert (
        api["rollout"]["rollout"]["mode"] == "canary" and api["rollout"]["recommendation"]["action"] == "keep"
    )
