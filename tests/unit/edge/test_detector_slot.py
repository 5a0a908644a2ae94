"""Which runtime detects a garment during a release, and when a release on probation is reverted or settled
(pure logic: the runtimes here are stand-ins that only carry a version)."""

from datetime import timedelta

from edge.detectors.release import DetectorSlot, ReleaseConfig, Running
from seamline.clock import utcnow
from seamline.release import ReleaseCanary, ReleaseManifest


class _Runtime:
    def __init__(self, version):
        self.meta = type("Meta", (), {"version": version})()
        self.closed = False

    def close(self):
        self.closed = True


def _release(serial=2, share=None, version="det@2"):
    now = utcnow()
    manifest = ReleaseManifest(
        site_id="s",
        version=version,
        serial=serial,
        artefact_url="https://x/y.tar",
        sha256="0" * 64,
        size_bytes=1,
        canary=ReleaseCanary(share=share) if share else None,
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )
    return Running(_Runtime(version), manifest, None)


def _slot(**config):
    slot = DetectorSlot(Running(_Runtime("det@1"), None, None), ReleaseConfig(**config), budget_ms=1000)
    reverts, settled = [], []
    slot.on_revert = lambda running, why: reverts.append(why)
    slot.on_settled = settled.append
    return slot, reverts, settled


IDS = [f"g{i:05d}" for i in range(2000)]


def test_a_release_takes_the_next_garment_and_a_share_only_its_share():
    slot, _, _ = _slot()
    assert slot.for_garment("a").version == "det@1"
    slot.install(_release())
    assert slot.for_garment("b").version == "det@2" and slot.active.version == "det@2"
    canary, _, _ = _slot()
    canary.install(_release(share=0.1))
    picked = [i for i in IDS if canary.for_garment(i).version == "det@2"]
    assert 140 <= len(picked) <= 260 and canary.active.version == "det@1"
    assert picked == [i for i in IDS if canary.for_garment(i).version == "det@2"]  # stable per garment


def test_errors_in_a_row_revert_it_for_the_next_garment_and_close_it():
    slot, reverts, _ = _slot(max_errors=3)
    release = _release()
    slot.install(release)
    for ok in (False, True, False, False):
        slot.observe("x", slot.for_garment("x"), ok, 0.01)
    assert not reverts  # the success in between reset the count
    slot.observe("x", slot.for_garment("x"), False, 0.01)
    assert reverts == ["3 garments in a row failed to detect"]
    assert slot.for_garment("y").version == "det@1" and release.runtime.closed


def test_a_slow_release_or_one_that_misses_deadlines_is_reverted():
    slow, reverts, _ = _slot(max_detect_ms=100)
    slow.install(_release())
    for _ in range(25):
        slow.observe("x", slow.for_garment("x"), True, 0.2)
    assert reverts and "p95 detect time 200 ms" in reverts[0]
    late, reverts, _ = _slot(max_deadline_miss_share=0.05)
    late.install(_release())
    for i in range(25):
        item = f"i{i}"
        running = late.for_garment(item)
        late.commanded(item, missed=i % 5 == 0)
        late.observe(item, running, True, 0.01)
    assert reverts and "missed their deadline" in reverts[0]
    assert not late._garment_runtime  # a commanded garment is forgotten, in time or not


def test_a_share_canary_detects_its_share_by_garment_id_and_forgets_commanded_garments():
    slot, reverts, _ = _slot(probation_garments=1000)
    slot.install(_release(share=0.3))
    items = [f"line1-st-{i:06d}" for i in range(400)]
    picked = [i for i in items if slot.for_garment(i).version == "det@2"]
    assert 0.2 < len(picked) / len(items) < 0.4  # 7 standard deviations of Binomial(400, 0.3)
    assert [i for i in items if slot.for_garment(i).version == "det@2"] == picked  # the same on replay
    assert slot.active.version == "det@1"  # a share never makes the release the line's active version
    for item in items:
        slot.commanded(item, missed=False)
    assert not slot._garment_runtime and not reverts


def test_probation_passed_makes_a_full_release_the_stable_one():
    slot, reverts, settled = _slot(probation_garments=10)
    old = slot.stable
    slot.install(_release())
    for _ in range(10):
        slot.observe("x", slot.for_garment("x"), True, 0.01)
    assert settled and not reverts and not slot.on_probation
    assert slot.stable.version == "det@2" and slot.release is None
    slot.for_garment("z")  # the loop thread closes what was retired
    assert old.runtime.closed
