"""Reviewers, their roles, passwords and browser sessions, and the login throttle.

Passwords are argon2id hashes at OWASP's parameters (19 MiB, 2 passes, 1 lane); a hash made before (scrypt)
or with weaker parameters is replaced at the reviewer's next successful login. A reviewer's role is
``reviewer`` (reviews) or ``admin`` (also manages reviewers, reads reports, downloads exports). A session is a
random token in an HttpOnly cookie; the database keeps only its SHA-256, the reviewer, an expiry and the
session's CSRF token (which every form and every JSON POST must carry). Who acts is always the session's
reviewer, never a field of the request. Failed logins are counted in the database, so every console replica
sees the same count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloud.storage.tables import login_throttle, review_sessions, reviewers
from seamline.clock import utcnow
from seamline.errors import InputError
from seamline.optional import require

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
Role = Literal["reviewer", "admin"]
ROLES: tuple[Role, ...] = ("reviewer", "admin")


class ReviewerError(InputError, ValueError):
    """A reviewer account cannot be created or changed as asked."""


@dataclass(frozen=True)
class Session:
    reviewer_id: str
    display_name: str
    csrf_token: str
    expires_at: datetime
    role: Role = "reviewer"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hasher():  # type: ignore[no-untyped-def]
    argon2 = require("argon2", "Reviewer passwords", extra="review", package="argon2-cffi")
    # OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    return argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def _verify_scrypt(password: str, stored: str) -> bool:
    """A hash of the console's first version: scrypt$n$r$p$salt$digest."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), dklen=len(expected), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_password(password: str, stored: str) -> tuple[bool, bool]:
    """(the password matches, the stored hash should be replaced by a new ``hash_password``)."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored), True
    hasher = _hasher()
    try:
        hasher.verify(stored, password)
    except Exception:  # argon2's VerifyMismatchError, InvalidHashError...: no match either way
        return False, False
    return True, hasher.check_needs_rehash(stored)


_DUMMY_HASH: str | None = None  # unknown names cost as much as wrong passwords


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


class LoginThrottle:
    """At most ``limit`` failed logins per reviewer name in a window of ``window_s``, counted in the audit
    store so that every console replica shares the count.

    The window opens at a name's first failure; at the limit the name is blocked (even with the right
    password) until the window ends. A success clears the name. Each step is one guarded UPDATE, so parallel
    guesses on several replicas cannot slip past the limit together.
    """

    def __init__(self, engine: sa.Engine, limit: int = 5, window_s: float = 300.0) -> None:
        self.engine, self.limit, self.window_s = engine, limit, window_s

    def attempt(self, name: str) -> float:
        """Count a login attempt for ``name`` as failed until ``succeeded`` says otherwise, in one step.

        Returns 0, or the seconds to wait if over the limit.
        """
        name = name[:128]
        now = utcnow()
        window = timedelta(seconds=self.window_s)
        row = login_throttle.c
        for _ in range(3):  # a concurrent first failure may insert the row between our steps
            with self.engine.begin() as conn:
                reset = conn.execute(
                    login_throttle.update()
                    .where(row.name == name, row.window_start <= now - window)
                    .values(failures=1, window_start=now)
                )
                if reset.rowcount:
                    return 0.0
                counted = conn.execute(
                    login_throttle.update()
                    .where(row.name == name, row.failures < self.limit)
                    .values(failures=row.failures + 1)
                )
                if counted.rowcount:
                    return 0.0
                start = conn.execute(sa.select(row.window_start).where(row.name == name)).scalar()
            if start is not None:
                return max(0.1, (start + window - now).total_seconds())
            try:
                with self.engine.begin() as conn:
                    conn.execute(login_throttle.insert().values(name=name, failures=1, window_start=now))
                return 0.0
            except IntegrityError:
                continue
        return self.window_s

    def succeeded(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(login_throttle.delete().where(login_throttle.c.name == name[:128]))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Reviewers:
    """Reviewer accounts and sessions in the audit store."""

    def __init__(self, engine: sa.Engine, *, session_ttl: timedelta = timedelta(hours=12)) -> None:
        self.engine = engine
        self.session_ttl = session_ttl

    def add(
        self, reviewer_id: str, password: str, display_name: str | None = None, role: Role = "reviewer"
    ) -> None:
        if role not in ROLES:
            raise ReviewerError(f"role {role!r}: one of {', '.join(ROLES)}")
        if not _ID.match(reviewer_id):
            raise ReviewerError(
                f"reviewer id {reviewer_id!r}: 1-64 characters of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit"
            )
        if len(password) < MIN_PASSWORD:
            raise ReviewerError(f"password: at least {MIN_PASSWORD} characters")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    reviewers.insert().values(
                        reviewer_id=reviewer_id,
                        display_name=display_name or reviewer_id,
                        password_hash=hash_password(password),
                        active=True,
                        created_at=utcnow(),
                        role=role,
                    )
                )
        except IntegrityError as exc:
            raise ReviewerError(f"reviewer {reviewer_id!r} exists already") from exc

    def set_active(self, reviewer_id: str, active: bool) -> None:
        """Enable or disable an account; disabling ends its sessions at once."""
        with self.engine.begin() as conn:
            done = conn.execute(
                reviewers.update().where(reviewers.c.reviewer_id == reviewer_id).values(active=active)
            )
            if not active:
                conn.execute(review_sessions.delete().where(review_sessions.c.reviewer_id == reviewer_id))
        if not done.rowcount:
            raise ReviewerError(f"no reviewer {reviewer_id!r}")

    def set_role(self, reviewer_id: str, role: Role) -> None:
        if role not in ROLES:
            raise ReviewerError(f"role {role!r}: one of {', '.join(ROLES)}")
        with self.engine.begin() as conn:
            done = conn.execute(
                reviewers.update().where(reviewers.c.reviewer_id == reviewer_id).values(role=role)
            )
        if not done.rowcount:
            raise ReviewerError(f"no reviewer {reviewer_id!r}")

    def accounts(self) -> list[dict]:
        """Every account: id, display name, role, active, created (for the admin page)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    reviewers.c.reviewer_id,
                    reviewers.c.display_name,
                    reviewers.c.role,
                    reviewers.c.active,
                    reviewers.c.created_at,
                ).order_by(reviewers.c.reviewer_id)
            ).all()
        return [row._asdict() for row in rows]

    def set_password(self, reviewer_id: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise ReviewerError(f"password: at least {MIN_PASSWORD} characters")
        with self.engine.begin() as conn:
            done = conn.execute(
                reviewers.update()
                .where(reviewers.c.reviewer_id == reviewer_id)
                .values(password_hash=hash_password(password))
            )
            conn.execute(review_sessions.delete().where(review_sessions.c.reviewer_id == reviewer_id))
        if not done.rowcount:
            raise ReviewerError(f"no reviewer {reviewer_id!r}")

    def authenticate(self, reviewer_id: str, password: str) -> bool:
        """The password is right and the account active; an outdated hash is replaced on the way."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(reviewers.c.password_hash, reviewers.c.active).where(
                    reviewers.c.reviewer_id == reviewer_id
                )
            ).first()
        ok, outdated = verify_password(password, row[0] if row else _dummy_hash())
        if row and ok and outdated:
            with self.engine.begin() as conn:
                conn.execute(
                    reviewers.update()
                    .where(reviewers.c.reviewer_id == reviewer_id, reviewers.c.password_hash == row[0])
                    .values(password_hash=hash_password(password))
                )
        return bool(row and row[1] and ok)

    def open_session(self, reviewer_id: str) -> tuple[str, Session]:
        """A new session for an authenticated reviewer: (cookie token, session)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(review_sessions.delete().where(review_sessions.c.expires_at < now))
            conn.execute(
                review_sessions.insert().values(
                    token_hash=token_hash(token),
                    reviewer_id=reviewer_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + self.session_ttl,
                )
            )
        session = self.session(token)
        assert session is not None
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie token, or None (unknown, expired, or the reviewer deactivated)."""
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    review_sessions.c.reviewer_id,
                    reviewers.c.display_name,
                    review_sessions.c.csrf_token,
                    review_sessions.c.expires_at,
                    reviewers.c.role,
                )
                .join(reviewers, reviewers.c.reviewer_id == review_sessions.c.reviewer_id)
                .where(review_sessions.c.token_hash == token_hash(token), reviewers.c.active.is_(True))
            ).first()
        if row is None:
            return None
        if row[3] <= utcnow():
            return None
        return Session(row[0], row[1], row[2], row[3], row[4])

    def close_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as conn:
                conn.execute(
                    review_sessions.delete().where(review_sessions.c.token_hash == token_hash(token))
                )
