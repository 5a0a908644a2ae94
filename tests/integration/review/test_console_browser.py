"""The console in a real browser (Debian's Chromium driven by Playwright): log in, take an item, correct a
crop's type with the keyboard and the form, submit; the final verdict goes out over MQTT and the feedback row
records the misclassification."""

import shutil

import pytest
import sqlalchemy as sa

from cloud.storage.tables import review_decisions, review_feedback, review_items
from harness.review import queue_garments
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium must not reach out to Google's services from a machine with no route to them.
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip(
            "no system Chromium (Debian: apt-get install chromium; scripts/setup.sh does it where it can)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_log_in_take_an_item_correct_a_type_and_submit(console, recorder, browser, tmp_path):
    service = console.service
    queue_garments(
        service.audit, service.crop_store, 3
    )  # rv-0000 is high priority: AI says c0 stain, c1 hole
    service.reviewers.add("alice", "review-pass-1", "Alice Reviewer")
    page = browser.new_page()
    page.set_default_timeout(15_000)

    page.goto(f"{console.url}/")
    assert "/login" in page.url
    page.fill("input[name=reviewer_id]", "alice")
    page.fill("input[name=password]", "review-pass-1")
    page.click("button[type=submit]")
    page.wait_for_selector("#take-next")
    assert page.inner_text("#who") == "Alice Reviewer"
    assert page.inner_text("#count-high") == "1"

    page.keyboard.press("n")  # take the next item
    page.wait_for_url("**/items/rv-0000")
    assert page.locator("svg.view image").count() == 2  # the crops placed on the view, with their boxes
    assert page.locator("img.enlarged").evaluate_all(
        "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
    )
    page.select_option("select[name=type-c0]", "tear")  # the AI said stain: it is a tear
    page.select_option("select[name=severity-c0]", "severe")
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("r")  # reject
    assert page.is_checked("input[name=decision][value=reject]")
    page.screenshot(path=str(tmp_path / "item.png"), full_page=True)
    page.click("#submit")
    page.wait_for_url(f"{console.url}/")

    assert wait_until(lambda: any(v["item_id"] == "rv-0000" for v in recorder.verdicts), 15)
    verdict = next(v for v in recorder.verdicts if v["item_id"] == "rv-0000")
    assert (verdict["source"], verdict["final"], verdict["decision"], verdict["reviewer_id"]) == (
        "review",
        True,
        "reject",
        "alice",
    )
    assert {d["crop_id"]: (d["type"], d["severity"]) for d in verdict["defects"]} == {
        "c0": ("tear", "severe"),
        "c1": ("hole", "severe"),
    }
    with service.audit.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                review_feedback.c.region_id,
                review_feedback.c.ai_type,
                review_feedback.c.human_type,
                review_feedback.c.outcome,
                review_feedback.c.reviewer_id,
            )
            .where(review_feedback.c.item_id == "rv-0000")
            .order_by(review_feedback.c.region_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("c0", "stain", "tear", "misclassification", "alice"),
        ("c1", "hole", "hole", "agreement", "alice"),
    ]
    # the queue page shows the two items left, live
    page.wait_for_selector("#queue-rows tr")
    assert page.locator("#queue-rows tr").count() == 2


def test_a_missed_defect_drawn_on_a_view_becomes_a_false_negative(console, recorder, browser):
    service = console.service
    queue_garments(service.audit, service.crop_store, 1, crops_per_garment=1)
    service.reviewers.add("bob", "review-pass-1")
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{console.url}/login")
    page.fill("input[name=reviewer_id]", "bob")
    page.fill("input[name=password]", "review-pass-1")
    page.click("button[type=submit]")
    page.click("#take-next")
    page.wait_for_url("**/items/rv-0000")
    page.keyboard.press("d")  # draw mode
    view = page.locator("svg.view").first.bounding_box()
    page.mouse.move(view["x"] + view["width"] * 0.6, view["y"] + view["height"] * 0.6)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] * 0.75, view["y"] + view["height"] * 0.8, steps=5)
    page.mouse.up()
    page.wait_for_selector("#missed-list li")
    page.select_option("#missed-list .missed-type", "hole")
    page.keyboard.press("r")
    page.click("#submit")
    page.wait_for_url(f"{console.url}/")
    assert wait_until(lambda: any(v["item_id"] == "rv-0000" for v in recorder.verdicts), 15)
    verdict = next(v for v in recorder.verdicts if v["item_id"] == "rv-0000")
    missed = [d for d in verdict["defects"] if d["crop_id"] == "missed#1"]
    assert len(missed) == 1 and missed[0]["type"] == "hole"
    x1, y1, x2, y2 = missed[0]["box"]
    # the drawn box, in the view's pixels (640x480)
    assert 0.55 * 640 < x1 < 0.65 * 640 and 0.7 * 640 < x2 < 0.8 * 640
    assert 0.55 * 480 < y1 < 0.65 * 480 and 0.75 * 480 < y2 < 0.85 * 480
    assert service.queue.detail("rv-0000")["decision"]["outcome"] == "false_negative"
    # the decided item reads back: the reviewer's labels and the drawn box, no form to change them
    page.goto(f"{console.url}/items/rv-0000")
    assert "missed by the detector" in page.inner_text("#missed-list")
    assert page.locator("svg.view rect.missed-box").count() == 1
    assert page.locator("#submit").count() == 0 and "Decided reject by bob" in page.inner_text("#decided")


def test_an_audit_sample_is_reviewed_blind(console, recorder, browser):
    """A garment settled automatically and sampled for audit: the page shows nothing of the AI's answer (no
    decision, type, severity, reason or score, nothing preselected from it) until the reviewer decided; then
    the answer shows beside the decision. The JSON API hides it the same way."""
    service = console.service
    (item_id,) = queue_garments(service.audit, service.crop_store, 1, prefix="au", audit=True)
    service.reviewers.add("carol", "review-pass-1", "Carol Reviewer")
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{console.url}/login")
    page.fill("input[name=reviewer_id]", "carol")
    page.fill("input[name=password]", "review-pass-1")
    page.click("button[type=submit]")
    page.wait_for_selector("#take-next")
    assert page.inner_text("#count-low") == "1"
    page.keyboard.press("n")
    page.wait_for_url(f"**/items/{item_id}")

    assert page.is_visible("#blind")
    assert page.locator("#ai-answer").count() == 0
    assert page.locator("p.ai, p.reason, span.score").count() == 0
    text = page.inner_text("main")
    for said in ("stain", "Looks like", "0.97", "classifier"):
        assert said not in text, said
    assert page.locator("select[name=type-c0]").input_value() == "normal"  # not the AI's "stain"
    assert not page.is_checked("input[name=decision][value=pass]")
    assert not page.is_checked("input[name=decision][value=reject]")
    api = page.request.get(f"{console.url}/api/items/{item_id}").json()
    assert api["blind"] is True and api["kind"] == "audit" and api["ai_verdict"] is None

    page.select_option("select[name=type-c0]", "stain")
    page.select_option("select[name=severity-c0]", "moderate")
    page.select_option("select[name=type-c1]", "hole")
    page.select_option("select[name=severity-c1]", "severe")
    page.check("input[name=decision][value=reject]")
    page.click("#submit")
    page.wait_for_url(f"{console.url}/")
    page.goto(f"{console.url}/items/{item_id}")
    assert page.locator("#blind").count() == 0
    assert "AI:" in page.inner_text("#ai-answer") and page.locator("p.ai").count() == 2
    assert page.request.get(f"{console.url}/api/items/{item_id}").json()["ai_verdict"]["route"] == "auto"
    with service.audit.engine.connect() as conn:
        kind, decision = conn.execute(
            sa.select(review_items.c.kind, review_decisions.c.decision).join(
                review_decisions, review_decisions.c.item_id == review_items.c.item_id
            )
        ).one()
    assert (kind, decision) == ("audit", "reject")
