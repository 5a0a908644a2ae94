"""Reviewers, their passwords and browser sessions.

Passwords are stored as scrypt hashes. A session is a random token in an HttpOnly cookie; the database keeps
only its SHA-256, the reviewer, an expiry and the session's CSRF token (which every form and every JSON POST
must carry). Who acts is always the session's reviewer, never a field of the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloud.storage.tables import review_sessions, reviewers
from seamline.clock import utcnow
from seamline.errors import InputError

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8


class ReviewerError(InputError, ValueError):
    """A reviewer account cannot be created or changed as asked."""


@dataclass(frozen=True)
class Session:
    reviewer_id: str
    display_name: str
    csrf_token: str
    expires_at: datetime


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), dklen=len(expected), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # unknown names cost as much as wrong passwords


class LoginThrottle:
    """At most ``limit`` failed logins per reviewer name within ``window_s`` (per console process).

    Slows password guessing to a crawl; a success clears the name's failures. In memory on purpose: a restart
    forgets, which only gives a guesser another few tries.
    """

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def attempt(self, name: str) -> float:
        """Count a login attempt for ``name`` as failed until ``succeeded`` says otherwise, in one step.

        One step, so parallel guesses cannot all slip past the check. Returns 0, or the seconds to wait if
        over the limit.
        """
        with self._lock:
            recent = self._recent(name)
            if len(recent) >= self.limit:
                return max(0.1, recent[0] + self.window_s - time.monotonic())
            recent.append(time.monotonic())
            return 0.0

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    def _recent(self, name: str) -> deque[float]:
        recent = self._failures.setdefault(name, deque())
        while recent and recent[0] < time.monotonic() - self.window_s:
            recent.popleft()
        return recent


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Reviewers:
    """Reviewer accounts and sessions in the audit store."""

    def __init__(self, engine: sa.Engine, *, session_ttl: timedelta = timedelta(hours=12)) -> None:
        self.engine = engine
        self.session_ttl = session_ttl

    def add(self, reviewer_id: str, password: str, display_name: str | None = None) -> None:
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
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(reviewers.c.password_hash, reviewers.c.active).where(
                    reviewers.c.reviewer_id == reviewer_id
                )
            ).first()
        ok = verify_password(password, row[0] if row else _DUMMY_HASH)
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
                )
                .join(reviewers, reviewers.c.reviewer_id == review_sessions.c.reviewer_id)
                .where(review_sessions.c.token_hash == token_hash(token), reviewers.c.active.is_(True))
            ).first()
        if row is None:
            return None
        if row[3] <= utcnow():
            return None
        return Session(row[0], row[1], row[2], row[3])

    def close_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as conn:
                conn.execute(
                    review_sessions.delete().where(review_sessions.c.token_hash == token_hash(token))
                )
