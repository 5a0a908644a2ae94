"""The demo's simulated reviewer: a bot that works the review console over HTTP like a person would.

It logs in, takes the next item, labels every crop from the synthetic line's truth (the defect under the crop,
or ``normal``), draws a box for each true defect no crop covers (a false negative of the detector), decides
pass or reject as the truth says, and submits. Its decisions are therefore correct by construction, so what
the demo's review report measures is the *AI* against ground truth: agreement, false positives and negatives,
misclassifications, per-class precision and recall. It is clearly a stand-in for people, and only in the demo.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
Labeler = Callable[[dict[str, Any]], dict[str, Any] | None]


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap(a, b) -> float:  # type: ignore[no-untyped-def]
    """Share of box ``b`` inside box ``a``."""
    inter = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return _area(inter) / max(1e-9, _area(b))


def synthetic_labeler(source: dict[str, Any], index: Callable[[str], int | None]) -> Labeler:
    """item (the console's JSON for a taken item) -> the decision a careful person would submit.

    The decision comes from the synthetic line's truth; ``index`` maps an item id to the garment it shows
    (``seamline.demo.runner.GarmentIndex``).
    """
    from seamline.synth import SynthConfig, SyntheticLine

    line = SyntheticLine(SynthConfig(**source.get("synth", {})))

    def label(item: dict[str, Any]) -> dict[str, Any] | None:
        found = index(item["item_id"])
        if found is None:
            return None
        garment = line.garment(found)
        defects = [d for d in garment.defects if d.visible >= 0.5]
        crops, covered = [], set()
        for crop in item["crops"]:
            here = [
                d
                for d in defects
                if d.view_index == crop["view_index"] and _overlap(crop["box"], d.box) >= 0.3
            ]
            if here:
                best = max(here, key=lambda d: _overlap(crop["box"], d.box))
                covered.update(d.defect_index for d in here)
                crops.append(
                    {"crop_id": crop["crop_id"], "type": best.type_id, "severity": best.severity.value}
                )
            else:
                crops.append({"crop_id": crop["crop_id"], "type": "normal", "severity": "none"})
        sizes = {int(v[0]): (int(v[1]), int(v[2])) for v in item["views"]}
        missed = []
        for d in defects:
            if d.defect_index in covered or d.view_index not in sizes:
                continue
            width, height = sizes[d.view_index]
            box = [
                max(0.0, d.box[0]),
                max(0.0, d.box[1]),
                min(float(width), d.box[2]),
                min(float(height), d.box[3]),
            ]
            if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
                missed.append(
                    {"view_index": d.view_index, "box": box, "type": d.type_id, "severity": d.severity.value}
                )
                covered.add(d.defect_index)
        return {
            "decision": garment.expected_decision.value,
            "crops": crops,
            "missed": missed[:32],
            "note": "Simulated reviewer: labelled from the synthetic truth.",
        }

    return label


class SimulatedReviewer(threading.Thread):
    """Works the console's queue until ``finish()`` is called and the queue is empty, or ``stop()``."""

    def __init__(
        self, url: str, reviewer_id: str, password: str, labeler: Labeler, *, think_s: float = 0.2
    ) -> None:
        super().__init__(name="simulated-reviewer", daemon=True)
        self.url, self.reviewer_id, self.password = url, reviewer_id, password
        self.labeler = labeler
        self.think_s = think_s
        self.decided = 0
        self.errors: list[str] = []
        self._finishing = threading.Event()
        self._halt = threading.Event()

    def finish(self) -> None:
        """Decide what is left in the queue, then end."""
        self._finishing.set()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the dashboard

        try:
            with httpx.Client(base_url=self.url, timeout=30, follow_redirects=False) as http:
                csrf = console_login(http, self.reviewer_id, self.password)
                while not self._halt.is_set():
                    answer = http.post("/api/take", headers={"X-CSRF-Token": csrf})
                    if answer.status_code == 204:
                        if self._finishing.is_set():
                            return
                        self._halt.wait(1.0)
                        continue
                    answer.raise_for_status()
                    item = answer.json()
                    decision = self.labeler(item)
                    if decision is None:  # not a synthetic garment: leave it for people
                        http.post(f"/api/items/{item['item_id']}/release", headers={"X-CSRF-Token": csrf})
                        return
                    self._halt.wait(self.think_s)
                    done = http.post(
                        f"/api/items/{item['item_id']}/decision",
                        json=decision,
                        headers={"X-CSRF-Token": csrf},
                    )
                    if done.status_code != 200:
                        self.errors.append(f"{item['item_id']}: {done.status_code} {done.text[:300]}")
                        logger.warning("simulated reviewer: %s", self.errors[-1])
                        http.post(f"/api/items/{item['item_id']}/release", headers={"X-CSRF-Token": csrf})
                        return
                    self.decided += 1
        except Exception as exc:  # the demo reports it; the line itself goes on
            self.errors.append(f"{exc.__class__.__name__}: {exc}")
            logger.warning("simulated reviewer stopped: %s", exc)


def console_login(http: Any, reviewer_id: str, password: str) -> str:
    """Log an httpx client (base URL: the console) in as a person would; returns the session's CSRF token."""
    page = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no login form")
    answer = http.post(
        "/login", data={"csrf_token": token[1], "reviewer_id": reviewer_id, "password": password, "next": "/"}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login refused ({answer.status_code})")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/").text)
    if csrf is None:
        raise RuntimeError("no CSRF token on the queue page")
    return csrf[1]


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()
