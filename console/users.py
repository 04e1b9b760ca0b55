"""Console users and their web sessions: argon2id password hashes, session tokens stored as SHA-256.

Tables (Alembic migration ``0002_console_users``, models on :class:`alerts.store.Base`)::

    users          user name, argon2id hash, role (operator | officer | admin), enterprise (officers),
                   language, disabled flag
    web_sessions   SHA-256 of the session token, its user, when it was made and when it expires

The cookie holds the random token; the database only its SHA-256, so a copy of the database lets
nobody log in. The CSRF token is derived from the session token (HMAC), so it needs no storage and
dies with the session. Every change is an :class:`~alerts.store.Action` audit row.

Errors::

    UserError
     ├── UnknownUser
     └── InvalidUser      bad name, role, enterprise or password (ValueError)
          └── UserExists  the name is taken
"""

from __future__ import annotations

import builtins
import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, ForeignKey, Integer, String, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from alerts.store import Action, Base, Store, UtcDateTime, utcnow

__all__ = [
    "LANGUAGES",
    "ROLES",
    "InvalidUser",
    "SessionInfo",
    "UnknownUser",
    "UserExists",
    "UserError",
    "UserRow",
    "UserService",
    "WebSession",
    "csrf_for",
    "hash_password",
    "token_hash",
    "verify_password",
]

ROLES: tuple[str, ...] = ("operator", "officer", "admin")
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
USERNAME_PATTERN = re.compile(r"^[\w.@-]{1,64}$")
MIN_PASSWORD = 8

#: argon2id with the RFC 9106 "second recommended option" parameters (t=3, m=64 MiB, p=4).
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, type=Type.ID)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so that both answers take as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class UserError(Exception):
    """Base of the console user errors."""


class UnknownUser(UserError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")
        self.username = username


class InvalidUser(UserError, ValueError):
    pass


class UserExists(InvalidUser):
    pass


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    """operator | officer | admin"""
    enterprise: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Officers: the enterprise whose sites they see (config ``sites[].enterprise``)."""
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Hex SHA-256 of the cookie's token."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    client: Mapped[str] = mapped_column(String(64), default="")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token of a session: an HMAC of its session token (nothing to store)."""
    return hmac.new(token.encode(), b"hazwatch-console-csrf", hashlib.sha256).hexdigest()[:43]


@dataclass(frozen=True)
class SessionInfo:
    """A live session: the user's row values and the session's CSRF token."""

    user_id: int
    username: str
    role: str
    enterprise: str | None
    language: str
    csrf: str
    expires_at: dt.datetime


def _check(username: str, role: str, enterprise: str | None, language: str) -> None:
    if not USERNAME_PATTERN.match(username or ""):
        raise InvalidUser("user name must be 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise InvalidUser(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "officer" and not (enterprise and enterprise.strip()):
        raise InvalidUser("an officer needs --enterprise (the enterprise whose sites they see)")
    if language not in LANGUAGES:
        raise InvalidUser(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidUser(f"the password needs at least {MIN_PASSWORD} characters")


class UserService:
    """Users and sessions in the audit store; every change in its own audited transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- users --------------------------------------------------------------------------------
    def add(self, username: str, password: str, role: str, *, enterprise: str | None = None,
            language: str = "zh-CN", by: str = "cli", now: dt.datetime | None = None) -> UserRow:
        now = now or utcnow()
        enterprise = enterprise.strip() if enterprise and enterprise.strip() else None
        _check(username, role, enterprise, language)
        _check_password(password)
        with self._store.session() as s:  # "Op" and "op" would be one person to a colleague
            clash = s.scalar(select(UserRow.username).where(func.lower(UserRow.username) == username.lower()))
        if clash is not None:
            raise UserExists(f"user {clash!r} already exists (names differ only in case)")
        row = UserRow(username=username, password_hash=hash_password(password), role=role,
                      enterprise=enterprise, language=language, disabled=False, created_at=now,
                      created_by=by)
        try:
            with self._store.session.begin() as s:
                s.add(row)
                s.flush()
                s.add(Action(action="user_create", actor=by, at=now, category=role,
                             text=f"{username}" + (f" ({enterprise})" if enterprise else "")))
        except IntegrityError:
            raise UserExists(f"user {username!r} already exists") from None
        return row

    def set_password(self, username: str, password: str, *, by: str = "cli",
                     now: dt.datetime | None = None) -> None:
        """A new password; every open session of the user ends (audited as ``user_password``)."""
        _check_password(password)
        self._change(username, by, now, "user_password", password_hash=hash_password(password))

    def set_disabled(self, username: str, disabled: bool, *, by: str = "cli",
                     now: dt.datetime | None = None) -> None:
        """Disable (log-in refused, open sessions end) or enable a user (``user_disable``/``user_enable``)."""
        self._change(username, by, now, "user_disable" if disabled else "user_enable", disabled=disabled)

    def _change(self, username: str, by: str, now: dt.datetime | None, action: str, **values: Any) -> None:
        now = now or utcnow()
        with self._store.session.begin() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                raise UnknownUser(username)
            for key, value in values.items():
                setattr(row, key, value)
            s.execute(delete(WebSession).where(WebSession.user_id == row.id))
            s.add(Action(action=action, actor=by, at=now, text=username))

    def list(self) -> builtins.list[UserRow]:
        with self._store.session() as s:
            return builtins.list(s.scalars(select(UserRow).order_by(UserRow.username)).all())

    def get(self, username: str) -> UserRow:
        with self._store.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            raise UnknownUser(username)
        return row

    def authenticate(self, username: str, password: str) -> UserRow | None:
        """The user when the password is right and the account enabled, else None."""
        with self._store.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            verify_password(_dummy_hash(), password)  # the same work as for a real user
            return None
        if not verify_password(row.password_hash, password) or row.disabled:
            return None
        if _HASHER.check_needs_rehash(row.password_hash):
            with self._store.session.begin() as s:
                s.get_one(UserRow, row.id).password_hash = hash_password(password)
        return row

    # -- sessions -----------------------------------------------------------------------------
    def open_session(self, user: UserRow, *, hours: float, client: str = "",
                     now: dt.datetime | None = None) -> tuple[str, SessionInfo]:
        """A new session for ``user``: (the token for the cookie, the session)."""
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        expires = now + dt.timedelta(hours=hours)
        with self._store.session.begin() as s:
            # expired sessions of anyone go when someone logs in: no separate clean-up job
            s.execute(delete(WebSession).where(WebSession.expires_at <= now))
            s.add(WebSession(token_hash=token_hash(token), user_id=user.id, created_at=now,
                             expires_at=expires, client=client[:64]))
            s.add(Action(action="login", actor=user.username, at=now, text=client[:200] or None))
        return token, SessionInfo(user.id, user.username, user.role, user.enterprise,
                                  user.language, csrf_for(token), expires)

    def session(self, token: str, now: dt.datetime | None = None) -> SessionInfo | None:
        """The live session of ``token``; None when unknown, expired or the user is disabled."""
        now = now or utcnow()
        with self._store.session() as s:
            found = s.execute(
                select(WebSession, UserRow).join(UserRow, UserRow.id == WebSession.user_id)
                .where(WebSession.token_hash == token_hash(token))
            ).first()
        if found is None:
            return None
        ws, user = found
        if ws.expires_at <= now or user.disabled:
            return None
        return SessionInfo(user.id, user.username, user.role, user.enterprise, user.language,
                           csrf_for(token), ws.expires_at)

    def close_session(self, token: str, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self._store.session.begin() as s:
            ws = s.get(WebSession, token_hash(token))
            if ws is None:
                return
            user = s.get(UserRow, ws.user_id)
            s.delete(ws)
            s.add(Action(action="logout", actor=user.username if user else "?", at=now))

    def record_failure(self, username: str, client: str, now: dt.datetime | None = None) -> None:
        with self._store.session.begin() as s:
            s.add(Action(action="login_failed", actor=username[:128] or "?", at=now or utcnow(),
                         text=client[:200] or None))
