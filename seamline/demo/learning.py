"""`seamline demo --learn`: after the line's first run, one turn of the learning loop, then the line again
with the new classifier as a canary, the rollout report, and a promotion or a rollback.

Every step is a ``seamline`` command a deployment runs, on the demo's configuration file:

1. before the line: the shipped demo classifier is registered as the classifier champion
   (``seamline models register ... --alias champion``);
2. run 1: the line runs; the simulated reviewer decides the routed garments and every audit sample (the
   demo audits all automatic decisions), so the verified store fills;
3. ``seamline learn run --once``: the demo trigger fires, a golden set is frozen, a candidate is trained from
   the champion's weights on the verified store, registered and gated against the champion;
4. if it passed: the candidate is served by a vLLM server of its own (``seamline cloud vllm``) and set as a
   canary (``seamline rollout classifier canary SHARE``); the running cloud service reads that before its
   next garment;
5. run 2: the line runs again on new garments; the canary's garments are decided by the candidate;
6. ``seamline rollout report`` over run 2 and its recommendation, acted on with ``seamline rollout
   classifier promote`` or ``rollback`` (a "keep" — not enough evidence yet — ends the demo's canary with a
   rollback: the champion stays until a canary shows the candidate is as good).

The line stands still while the candidate trains: on a two-core machine, training beside the line would
starve it; a deployment trains on other machines while the line runs. The demo's thresholds (trigger,
golden set, gate floors, audit samples per arm) are set low so that one cycle fits a few minutes; each is
in OUT/seamline.yaml, and the defaults of a real line are in README "Learning".
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from seamline.clock import utcnow
from seamline.demo.monitor import GarmentTrace, LineStats
from seamline.demo.settings import DemoSettings
from seamline.localbroker import free_port

CHAMPION_VERSION = "1"  # the registry's first version: the demo's store starts empty
CANDIDATE_MODEL = "seamline-demo-candidate"


def label(version: str) -> str:
    """The classifier version verdicts carry, from its registry version."""
    return f"classifier@{version}"


def fresh_data(settings: DemoSettings) -> None:
    """A learning demo starts from the shipped models and an empty store: remove an earlier run's data."""
    from seamline.demo.runner import DemoError

    out = settings.out_dir
    for folder in (out / "data", out / "models"):
        if not folder.exists():
            continue
        if not (out / "seamline.yaml").is_file():
            raise DemoError(
                f"--learn starts from an empty store, and {folder} was not written by the demo: "
                "pass another --out"
            )
        shutil.rmtree(folder)


def learning_settings(settings: DemoSettings) -> dict[str, Any]:
    """The demo's ``cloud.learning``: the loop's own settings with thresholds one short run can reach."""
    return {
        "triggers": {"min_new_verified": max(8, settings.garments // 4)},
        "golden": {"share": 0.2, "min_per_stratum": 1},
        "gate": {
            # No absolute floors: the shipped demo classifier names 63 % of held-out crops (its model card),
            # below a real line's floors (0.8 / 0.7), and one short run's golden set is a few garments. The
            # comparison with the champion (McNemar, per class, routing replay) decides.
            "floors": {"classifier_type_accuracy": 0.0, "classifier_severity_agreement": 0.0},
            "routing_tolerance": 0.05,
            "recent_weeks": 0,  # every verified label trains the candidate: nothing later to judge on
            "bootstrap_resamples": 500,
        },
        "train": {
            "models": ["classifier"],
            "classifier": {
                "steps": settings.learn_steps,
                "batch_size": 16,
                "lr": 2e-4,  # a fine-tune of the champion, not the first training's 1e-3
                "warmup_steps": min(20, settings.learn_steps // 5),
                "checkpoint_every": max(50, settings.learn_steps),
                "prompt": {"style": "v1-compact"},
                "eval_examples": 64,
            },
        },
        "promotion": {"min_audit_samples": 5, "window_days": 1},
    }


def apply_learning(settings: DemoSettings, config: dict[str, Any]) -> None:
    """What ``--learn`` changes in the demo's configuration."""
    cloud = config["cloud"]
    cloud["classifier"]["model_version"] = label(CHAMPION_VERSION)
    # every automatic decision is also reviewed (blind): both arms of the canary get audit samples
    cloud["audit"] = {"auto_share": 1.0}
    cloud["learning"] = learning_settings(settings)


def _seamline(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def prepare(run: Any) -> None:
    """Register the demo classifier as the champion (before the cloud serves it)."""
    from seamline.demo.runner import DemoError

    classifier = run.settings.classifier
    card = classifier / "seamline_model.json"
    # The shipped model's data is regenerated by scripts/train_demo_models.sh, not stored: its hash is the
    # hash of the training settings that name it.
    training = json.loads(card.read_text())["training"] if card.is_file() else {}
    digest = hashlib.sha256(json.dumps(training, sort_keys=True).encode()).hexdigest()
    done = _seamline(
        "models",
        "register",
        "classifier",
        str(classifier),
        "--config",
        str(run.config_path),
        "--data-sha256",
        digest,
        "--alias",
        "champion",
    )
    if done.returncode != 0:
        raise DemoError(f"could not register the demo classifier: {done.stderr.strip()[-2000:]}")
    version = json.loads(done.stdout)["version"]
    if version != CHAMPION_VERSION:
        raise DemoError(f"the demo's registry is not empty (the champion got version {version})")
    run.dashboard.phase(
        f"learning demo: {classifier} registered as classifier champion v{version} ({label(version)})"
    )


class _JobEvents:
    """The learning job's events on MQTT (learning_job.schema.json), shown as they come."""

    def __init__(self, run: Any) -> None:
        from seamline.contract.mqtt import topic_specs

        self.run = run
        self.events: list[dict[str, Any]] = []
        self._shown: set[str] = set()
        topic = topic_specs()["learning"].pattern.format(
            root=run.config["mqtt"]["topic_root"], site=run.config["site"]["site_id"]
        )
        run.bus.subscribe(topic, self._on_event)

    def _on_event(self, _topic: str, payload: bytes) -> None:
        event = json.loads(payload)
        self.events.append(event)
        model = (event.get("models") or {}).get("classifier") or {}
        step = f"job {event['job_id']}: {event['state']}, classifier {model.get('state', '-')}"
        if step not in self._shown:
            self._shown.add(step)
            extra = f" (v{model['version']})" if model.get("version") else ""
            self.run.dashboard.phase(f"learning {step}{extra}")


def learning_cycle(run: Any) -> dict[str, Any]:
    """Steps 3-6 of the module's text; returns what the summary shows."""
    from seamline.demo.runner import DemoError, finish_review, start_reviewer_bot, write_config

    settings, out = run.settings, run.settings.out_dir
    result: dict[str, Any] = {"champion": label(CHAMPION_VERSION), "steps": []}

    def step(message: str) -> None:
        result["steps"].append(message)
        run.dashboard.phase(message)

    # 3. the learning job
    events = _JobEvents(run)
    trigger = run.config["cloud"]["learning"]["triggers"]["min_new_verified"]
    step(
        f"seamline learn run --once: trigger at {trigger} new verified labels; trains a candidate from "
        f"champion v{CHAMPION_VERSION} for {settings.learn_steps} steps, then the gate"
    )
    started = time.monotonic()
    learn = run.start("learn", ["learn", "run", "--config", str(run.config_path), "--once"])
    while learn.alive():
        time.sleep(0.5)
    run.processes.remove(learn)
    learn.stop()
    outcome = _last_json(learn.log_path.read_text(errors="replace")) or {}
    result["job"] = {**outcome, "seconds": round(time.monotonic() - started, 1)}
    if events.events:
        result["job"]["models"] = events.events[-1].get("models")
    model = (result["job"].get("models") or {}).get("classifier") or {}
    if outcome.get("state") != "passed":
        why = outcome.get("detail") or ", ".join(model.get("failing") or []) or "see the log"
        step(f"no candidate to roll out: the job ended {outcome.get('state', 'without an outcome')} ({why})")
        result["action"] = "none"
        return result
    candidate = model["version"]
    result["candidate"] = label(candidate)
    step(
        f"candidate v{candidate} passed the gate in {result['job']['seconds']:.0f} s "
        f"(report {model.get('report')})"
    )

    # 4. serve it and start the canary
    fetched = _seamline(
        "models",
        "download",
        "classifier",
        candidate,
        "--out",
        str(out / "models" / "candidate"),
        "--config",
        str(run.config_path),
    )
    if fetched.returncode != 0:
        raise DemoError(f"could not fetch candidate v{candidate}: {fetched.stderr.strip()[-2000:]}")
    folder = fetched.stdout.strip().splitlines()[-1]
    port = free_port()
    server = run.start(
        "candidate-vllm",
        ["cloud", "vllm", folder, "--port", str(port), "--served-model-name", CANDIDATE_MODEL],
        ready=r"ready after",
    )
    step(f"seamline cloud vllm: serving candidate v{candidate} on port {port} (about a minute) ...")
    deadline = time.monotonic() + settings.ready_timeout_s
    while not server.ready.wait(0.5):
        if not server.alive() or time.monotonic() > deadline:
            raise DemoError(f"the candidate's vLLM did not start (log {server.log_path}):\n{server.tail()}")
    canary = _seamline(
        "rollout",
        "classifier",
        "canary",
        f"{settings.canary_share:g}",
        "--config",
        str(run.config_path),
        "--version",
        label(candidate),
        "--model",
        CANDIDATE_MODEL,
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--registry-version",
        candidate,
        "--reason",
        f"seamline demo --learn: learning job {outcome.get('job_id')}",
    )
    if canary.returncode != 0:
        raise DemoError(f"could not start the canary: {canary.stderr.strip()[-2000:]}")
    result["canary_share"] = settings.canary_share
    step(
        f"seamline rollout classifier canary {settings.canary_share:g}: candidate v{candidate} decides "
        "that share of garments"
    )

    # 5. run 2 on new garments
    seen = set(run.monitor.item_ids())
    run.index.next_run(list(seen), start=settings.garments)
    second = json.loads(json.dumps(run.config))
    second["edge"]["source"]["start_index"] = settings.garments
    config2 = out / "seamline-canary.yaml"
    write_config(config2, second, "the edge agent's second run (new garments; the canary)")
    since = utcnow() - timedelta(seconds=1)

    def in_run2(trace: GarmentTrace) -> bool:
        return trace.item_id not in seen

    start_reviewer_bot(run)
    step(f"run 2: {settings.garments} new garments, the canary deciding a share of them")
    after = run.run_line(config2, select=in_run2)
    if run.review_url is not None:
        after = finish_review(run, report_dir=None, select=in_run2)

    # 6. the rollout report and the decision
    report_dir = out / "rollout"
    done = _seamline(
        "rollout",
        "report",
        "--config",
        str(run.config_path),
        "--since",
        since.isoformat(),
        "--out",
        str(report_dir),
    )
    if done.returncode != 0:
        raise DemoError(f"seamline rollout report failed: {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    recommendation = report["recommendation"]
    result["rollout_report"] = str(report_dir / "report.md")
    result["recommendation"] = recommendation
    why = "; ".join(recommendation["reasons"])
    if recommendation["action"] == "promote":
        act = _seamline(
            "rollout",
            "classifier",
            "promote",
            "--config",
            str(run.config_path),
            "--reason",
            f"rollout report: {why}",
        )
        result["action"] = "promoted"
    else:
        reason = (
            f"rollout report: {why}"
            if recommendation["action"] == "rollback"
            else f"the demo's canary ends without enough evidence to promote ({why})"
        )
        act = _seamline(
            "rollout", "classifier", "rollback", "--config", str(run.config_path), "--reason", reason
        )
        result["action"] = "rolled_back"
    if act.returncode != 0:
        raise DemoError(f"could not {result['action'][:-1]}: {act.stderr.strip()[-2000:]}")
    step(
        f"rollout report recommends {recommendation['action']} ({why}): candidate v{candidate} "
        + (
            "promoted: it is the champion now"
            if result["action"] == "promoted"
            else "rolled back: the champion stays"
        )
    )

    result["compare"] = {
        "run 1: champion": _cloud_numbers(
            run.monitor.stats(lambda t: t.item_id in seen and t.arm is not None)
        ),
        "run 2: champion arm": _cloud_numbers(
            run.monitor.stats(lambda t: in_run2(t) and t.arm == "champion")
        ),
        "run 2: candidate arm": _cloud_numbers(
            run.monitor.stats(lambda t: in_run2(t) and t.arm == "candidate")
        ),
    }
    result["run2"] = after.to_dict()
    result["report"] = {k: report[k] for k in ("classifier", "detector", "period")}
    return result


def _cloud_numbers(stats: LineStats) -> dict[str, Any]:
    """What the before/after table compares: garments the cloud decided, by the synthetic truth."""
    return {
        "garments": stats.garments,
        "automated_share": stats.auto_share if stats.garments else None,
        "automatic_accuracy": stats.auto_accuracy,
        "line_accuracy": stats.line_accuracy,
        "latency_p50_ms": stats.latency_ms["p50"],
        "latency_p99_ms": stats.latency_ms["p99"],
        "deadline_misses": stats.deadline_misses,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def learning_markdown(learning: dict[str, Any]) -> str:
    """The summary's section on the learning cycle."""
    lines = ["", "## The learning cycle (`--learn`)", ""]
    lines += [f"{k + 1}. {message}" for k, message in enumerate(learning["steps"])]
    job = learning.get("job") or {}
    lines += [
        "",
        f"Learning job {job.get('job_id')}: **{job.get('state')}** after {job.get('seconds')} s; "
        f"triggers: {'; '.join(job.get('triggers') or []) or '-'}.",
    ]
    compare = learning.get("compare")
    if compare:
        names = list(compare)
        rows = [
            ("garments decided in the cloud", lambda r: str(r["garments"])),
            ("handled automatically", lambda r: _pct(r["automated_share"])),
            ("accuracy of automatic decisions (synthetic truth)", lambda r: _pct(r["automatic_accuracy"])),
            ("line accuracy (a diversion counts as not right)", lambda r: _pct(r["line_accuracy"])),
            (
                "frame -> line command p50 / p99",
                lambda r: f"{_ms(r['latency_p50_ms'])} / {_ms(r['latency_p99_ms'])}",
            ),
            ("deadline misses", lambda r: str(r["deadline_misses"])),
        ]
        lines += ["", "Before and after, on garments the cloud decided:", ""]
        lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for title, cell in rows:
            lines.append(f"| {title} | " + " | ".join(cell(compare[n]) for n in names) + " |")
    recommendation = learning.get("recommendation")
    if recommendation:
        lines += [
            "",
            f"Rollout report (`{learning['rollout_report']}`, audit samples only, as on a real line): "
            f"**{recommendation['action']}** — {'; '.join(recommendation['reasons'])}. "
            f"Action taken: **{learning['action']}**.",
        ]
    return "\n".join(lines) + "\n"
