"""The review console's capacity: how many decisions per second the console and its database sustain, and what
a take or a decision costs a reviewer in latency, against the seed's review workload.

Run: .venv/bin/python bench/review_console.py [--items 400] [--reviewers 1,4,16] [--db sqlite,postgresql]

Each row is a fresh audit store with ``--items`` garments queued for review (two crops each), a real console
(uvicorn, the real app, a real MQTT broker for its review events and final verdicts) and N reviewer clients
working the queue as fast as HTTP allows (take, then decide with labels for every crop). Baseline: the seed's
workload — about 30,000 garments a day with 24 % sent to people (7,200 reviews a day), and 680 garments per
person per day after their improvements. The ratio says how many such lines one console would carry.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.postgres import fresh_postgres_database  # noqa: E402  (the same set-up as the tests)
from harness.review import ConsoleThread, queue_garments, write_config  # noqa: E402
from seamline.demo.reviewer import console_login  # noqa: E402
from seamline.localbroker import local_broker  # noqa: E402

SEED_REVIEWS_PER_DAY = 30_000 * 0.24
SEED_PER_PERSON_PER_DAY = 680


def _login(url: str, name: str) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    return http, console_login(http, name, "bench-password")


def run(db: str, reviewers: int, items: int, broker_url: str) -> dict | None:
    with contextlib.ExitStack() as stack:
        audit_url = stack.enter_context(fresh_postgres_database()) if db == "postgresql" else None
        if db == "postgresql" and audit_url is None:
            return None
        return _measure(audit_url, reviewers, items, broker_url, db)


def _measure(audit_url: str | None, reviewers: int, items: int, broker_url: str, db: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="seamline-bench-review-"))
    console = ConsoleThread(
        write_config(tmp / "seamline.yaml", mqtt_url=broker_url, data_dir=tmp / "data", audit_url=audit_url)
    ).start()
    try:
        service = console.service
        queue_garments(service.audit, service.crop_store, items)
        for n in range(reviewers):
            service.reviewers.add(f"r{n}", "bench-password")
        clients = [_login(console.url, f"r{n}") for n in range(reviewers)]
        takes: list[float] = []
        decides: list[float] = []
        lock = threading.Lock()

        def work(http: httpx.Client, csrf: str) -> None:
            headers = {"X-CSRF-Token": csrf}
            while True:
                t0 = time.perf_counter()
                answer = http.post("/api/take", headers=headers)
                t1 = time.perf_counter()
                if answer.status_code == 204:
                    return
                item = answer.json()
                crops = [
                    {"crop_id": c["crop_id"], "type": "stain", "severity": "minor"} for c in item["crops"]
                ]
                done = http.post(
                    f"/api/items/{item['item_id']}/decision",
                    json={"decision": "reject", "crops": crops},
                    headers=headers,
                )
                t2 = time.perf_counter()
                assert done.status_code == 200, done.text
                with lock:
                    takes.append((t1 - t0) * 1000)
                    decides.append((t2 - t1) * 1000)

        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=client) for client in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        assert len(decides) == items, f"{len(decides)} of {items} decided"
        return {
            "db": db,
            "reviewers": reviewers,
            "items": items,
            "per_s": items / seconds,
            "take_p50": float(np.percentile(takes, 50)),
            "take_p99": float(np.percentile(takes, 99)),
            "decide_p50": float(np.percentile(decides, 50)),
            "decide_p99": float(np.percentile(decides, 99)),
        }
    finally:
        console.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--reviewers", default="1,4,16", help="comma-separated reviewer counts")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    broker = local_broker("mqtt://127.0.0.1:1883")
    rows = []
    try:
        for db in args.db.split(","):
            for n in (int(x) for x in args.reviewers.split(",")):
                row = run(db, n, args.items, broker.url)
                if row is None:
                    print(f"skipping {db}: no server on 127.0.0.1:5432", file=sys.stderr)
                    break
                rows.append(row)
    finally:
        broker.stop()
    table = Table(
        title=f"Review console capacity ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"
    )
    for column in (
        "database",
        "reviewers",
        "decisions/s",
        "take p50 / p99",
        "decide p50 / p99",
        "x seed review load",
        "x one person",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        per_day = r["per_s"] * 86_400
        table.add_row(
            r["db"],
            str(r["reviewers"]),
            f"{r['per_s']:.0f}",
            f"{r['take_p50']:.0f} / {r['take_p99']:.0f} ms",
            f"{r['decide_p50']:.0f} / {r['decide_p99']:.0f} ms",
            f"{per_day / SEED_REVIEWS_PER_DAY:,.0f}x",
            f"{per_day / SEED_PER_PERSON_PER_DAY:,.0f}x",
        )
    Console(width=150).print(table)
    print(
        f"seed baseline: {SEED_REVIEWS_PER_DAY:,.0f} reviews/day per line; "
        f"{SEED_PER_PERSON_PER_DAY} garments/person/day"
    )


if __name__ == "__main__":
    main()
