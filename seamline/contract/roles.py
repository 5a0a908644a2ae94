"""Who may publish and subscribe what on the broker: one row per role, and the Mosquitto ACL it renders to.

Least privilege, per site broker: an edge of line L writes only L's commands, its own availability and its
own local verdicts, and reads only L's verdicts; only the cloud's services write verdicts and review events;
a PLC reads its line; a dashboard reads and writes nothing. The table in docs/contract.md ("Who may publish
what") is this one; ``seamline broker acl`` writes the file (``deploy/mosquitto/seamline.acl`` is the
example for site1/line1).
"""

from __future__ import annotations

from dataclasses import dataclass

from seamline.contract.mqtt import check_level, check_root, cloud_availability_topic, topic_specs


@dataclass(frozen=True)
class Role:
    """A kind of broker client. ``user`` may name ``{line}`` (one user per line) or not (one per site)."""

    name: str
    user: str
    publishes: tuple[str, ...]  # contract topic names; "cloud_availability:<component>" for a cloud one
    subscribes: tuple[str, ...]  # likewise; "#" for everything under the root
    per_line: bool
    description: str


ROLES: tuple[Role, ...] = (
    Role(
        "edge",
        "edge-{line}",
        ("commands", "edge_availability", "edge_status", "edge_verdicts"),
        ("verdicts", "detector_releases"),
        True,
        "the edge agent of one line",
    ),
    Role(
        "plc",
        "plc-{line}",
        (),
        ("commands", "edge_availability", "edge_status"),
        True,
        "the line PLC (diverter) of one line",
    ),
    Role(
        "cloud",
        "seamline-cloud",
        ("verdicts", "reviews", "cloud_availability:classifier"),
        (),
        False,
        "the cloud classifier service (all its replicas)",
    ),
    Role(
        "review",
        "seamline-review",
        ("verdicts", "reviews", "cloud_availability:review"),
        ("reviews",),
        False,
        "the review console (all its replicas)",
    ),
    Role(
        "learning",
        "seamline-learning",
        ("learning", "detector_releases"),
        (),
        False,
        "the learning worker and the ML team's release command: retraining jobs, detector releases",
    ),
    Role("dashboard", "dashboard", (), ("#",), False, "dashboards and MES: read everything, write nothing"),
)


def role(name: str) -> Role:
    return next(r for r in ROLES if r.name == name)


def _topic(root: str, site: str, line: str, name: str) -> str:
    if name == "#":
        return f"{root}/#"
    if name.startswith("cloud_availability:"):
        return cloud_availability_topic(root, name.split(":", 1)[1], "+")  # every replica's
    return topic_specs()[name].pattern.format(root=root, site=site, line=line)


def grants(role_: Role, root: str, site: str, line: str | None) -> tuple[list[str], list[str]]:
    """(topics it may write, topics it may read) for ``role_``: of ``line``, or of every line (``+``)."""
    level = line if role_.per_line else "+"
    assert level is not None, f"role {role_.name} is per line: name the line"
    write = [_topic(root, site, level, name) for name in role_.publishes]
    # The review console follows every line's review events with one wildcard subscription, which the
    # broker checks as a whole: grant the wildcard (one broker per site, so it covers only this site).
    read = [
        _topic(root, "+" if name == "reviews" and not role_.per_line else site, level, name)
        for name in role_.subscribes
    ]
    return write, read


def render_acl(root: str, site: str, lines: list[str]) -> str:
    """A Mosquitto ``acl_file`` for one site broker with these lines."""
    check_root(root)
    check_level(site, "site id")
    for line in lines:
        check_level(line, "line id")
    if not lines:
        raise ValueError("name at least one line")
    out = [
        f"# Seamline broker ACL for site {site} (lines: {', '.join(lines)}), topic root {root!r}.",
        "# Written by `seamline broker acl`; one user per role (and per line for edges and PLCs).",
        "# Anything not granted here is denied. See docs/contract.md, 'Who may publish what'.",
    ]
    for role_ in ROLES:
        for line in lines if role_.per_line else [None]:
            user = role_.user.format(line=line)
            write, read = grants(role_, root, site, line)
            out += ["", f"# {role_.description}" + (f": {line}" if line else ""), f"user {user}"]
            out += [f"topic write {topic}" for topic in write]
            out += [f"topic read {topic}" for topic in read]
    return "\n".join(out) + "\n"
