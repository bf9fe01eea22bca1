"""Accounts, sessions and API tokens, stored in SQLite under the data directory.

- One admin, ever: a singleton row that a second INSERT cannot create, whatever the concurrency.
- Passwords hashed with Argon2 (pwdlib), in a small thread pool: the event loop never waits on a hash.
  bcrypt hashes from the original runner verify the way its bcryptjs did (the first 72 bytes of the
  UTF-8 password) and are upgraded to Argon2, of the whole password, at that login.
- Beyond loopback, the first-run setup needs a one-time code printed to the server's log (as Jenkins
  does), so nobody else on the network can claim the admin account of a fresh server first.
- Sessions are server-side rows: logout deletes the row, so a copied cookie dies with it. The cookie
  carries a random id signed with SESSION_SECRET.
- API tokens (``ccr_...``) are stored only as SHA-256 hashes (they are 240-bit random, so a fast hash is
  right) and compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from ccr.core.db import Database
from ccr.core.model import now

TOKEN_PREFIX = "ccr_"
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # characters; longer is refused, never truncated
USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
DEFAULT_TOKEN_NAME = "default"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS admin (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        username TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        expires REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        masked TEXT NOT NULL,
        created TEXT NOT NULL,
        last_used TEXT
    )""",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
BCRYPT_MAX_BYTES = 72


class LegacyBcryptHasher(BcryptHasher):
    """Verifies the original runner's bcrypt hashes as its library did; never makes new ones.

    The original hashed with bcryptjs 2.4.3, which keys bcrypt with the UTF-8 bytes of the password and uses
    only the first 72 of them (the algorithm's limit, cut mid-character if need be). The bcrypt package
    refuses longer passwords instead (ValueError, a 500 at login), so cut them here the same way.
    """

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        raw = password.encode() if isinstance(password, str) else password
        return super().verify(raw[:BCRYPT_MAX_BYTES], hash)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        raise NotImplementedError("new passwords are hashed with Argon2")


_hasher = PasswordHash((Argon2Hasher(), LegacyBcryptHasher()))
# Argon2 takes 64 MiB and ~0.1 s of CPU per hash: two at a time, off the event loop, whatever the load.
_hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ccr-password")


async def _off_loop(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, fn)


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings from anywhere (a cookie, a header): compared as bytes, since
    ``hmac.compare_digest`` raises on non-ASCII ``str``."""
    return hmac.compare_digest(a.encode(), b.encode())


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def mask(token: str) -> str:
    return f"{token[:8]}…{token[-4:]}"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    masked: str
    created: str
    last_used: str | None


class AuthStore:
    def __init__(
        self, data_dir: Path, session_secret: str | None, session_max_age: int, *, require_setup_code: bool = False
    ) -> None:
        self.db = Database(data_dir / "auth.db", SCHEMA)
        self._secret = (session_secret or self._stored_secret(data_dir)).encode()
        self.session_max_age = session_max_age
        self.has_admin = False
        self._legacy = data_dir / "auth.json"
        self._require_setup_code = require_setup_code
        self.setup_code: str | None = None  # while set, /setup needs it

    @staticmethod
    def _stored_secret(data_dir: Path) -> str:
        """Without SESSION_SECRET, a random one kept in the data directory: sessions survive restarts."""
        path = data_dir / "session_secret"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from its first byte
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    async def start(self) -> None:
        await self._import_legacy()
        self.has_admin = await self.db.fetchone("SELECT 1 FROM admin") is not None
        if self._require_setup_code and not self.has_admin:
            self.setup_code = "-".join(secrets.token_hex(3) for _ in range(4))  # 96 bits, easy to read out
            log.warning(
                "no admin account yet: open the dashboard and enter this setup code (it works once): %s",
                self.setup_code,
                extra={"setup_code": self.setup_code},
            )

    def setup_code_matches(self, code: str | None) -> bool:
        return self.setup_code is None or (code is not None and _same(code.strip().lower(), self.setup_code))

    def close(self) -> None:
        self.db.close()

    async def _import_legacy(self) -> None:
        """Adopt the original runner's auth.json (bcrypt hash, plain API token) once, then keep it aside."""
        if not self._legacy.exists():
            return
        data = json.loads(self._legacy.read_text())
        username = data.get("username")
        password_hash = data.get("password_hash") or data.get("passwordHash") or data.get("hash")
        token = data.get("api_token") or data.get("token")
        if username and password_hash:
            await self.db.execute(
                "INSERT OR IGNORE INTO admin (singleton, username, password_hash, created) VALUES (1, ?, ?, ?)",
                (username, password_hash, now().isoformat()),
            )
        if isinstance(token, str) and token.startswith(TOKEN_PREFIX):
            await self._store_token(DEFAULT_TOKEN_NAME, token, replace=False)
        self._legacy.rename(self._legacy.with_suffix(".json.imported"))

    # --- admin ------------------------------------------------------------------------------------
    async def create_admin(self, username: str, password: str) -> bool:
        """True if this call created the admin; False if one exists (also under a concurrent race)."""
        password_hash = await _off_loop(lambda: _hasher.hash(password))
        try:
            await self.db.execute(
                "INSERT INTO admin (singleton, username, password_hash, created) VALUES (1, ?, ?, ?)",
                (username, password_hash, now().isoformat()),
            )
        except sqlite3.IntegrityError:
            return False
        self.has_admin = True
        self.setup_code = None
        return True

    async def check_password(self, username: str, password: str) -> bool:
        row = await self.db.fetchone("SELECT username, password_hash FROM admin")
        if row is None:
            await _off_loop(lambda: _hasher.hash(password))  # the work of a real check: no "no such user" oracle
            return False
        try:
            valid, upgraded = await _off_loop(lambda: _hasher.verify_and_update(password, row["password_hash"]))
        except UnknownHashError:
            log.error("the stored password hash is of no known kind; nobody can log in until it is replaced")
            return False
        valid = valid and _same(row["username"], username)
        if valid and upgraded:
            await self.db.execute("UPDATE admin SET password_hash = ?", (upgraded,))
        return valid

    async def password_hash(self) -> str | None:
        row = await self.db.fetchone("SELECT password_hash FROM admin")
        return row["password_hash"] if row else None

    # --- sessions ---------------------------------------------------------------------------------
    def _sign(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, token: str, cookie: str) -> bool:
        return _same(token, self.csrf_token(cookie))

    async def new_session(self, username: str) -> str:
        """Returns the cookie value ``<id>.<signature>``."""
        session_id = secrets.token_urlsafe(32)
        await self.db.execute(
            "INSERT INTO sessions (id_hash, username, expires) VALUES (?, ?, ?)",
            (_sha256(session_id), username, time.time() + self.session_max_age),
        )
        return f"{session_id}.{self._sign(session_id)}"

    async def session_user(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        session_id, signature = cookie.rsplit(".", 1)
        if not _same(signature, self._sign(session_id)):
            return None
        row = await self.db.fetchone(
            "SELECT username FROM sessions WHERE id_hash = ? AND expires > ?",
            (_sha256(session_id), time.time()),
        )
        return row["username"] if row else None

    async def end_session(self, cookie: str | None) -> None:
        if cookie and "." in cookie:
            await self.db.execute("DELETE FROM sessions WHERE id_hash = ?", (_sha256(cookie.rsplit(".", 1)[0]),))

    def csrf_token(self, cookie: str) -> str:
        """A per-session CSRF token for forms: derived, so nothing more is stored."""
        return self._sign("csrf:" + cookie)

    # --- API tokens -------------------------------------------------------------------------------
    async def generate_token(self, name: str = DEFAULT_TOKEN_NAME) -> str:
        """A new token under ``name``, replacing any earlier token of that name. Shown once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(30)
        await self._store_token(name, token, replace=True)
        return token

    async def _store_token(self, name: str, token: str, *, replace: bool) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        await self.db.execute(
            f"{verb} INTO tokens (name, hash, masked, created) VALUES (?, ?, ?, ?)",
            (name, _sha256(token), mask(token), now().isoformat()),
        )

    async def token_name(self, token: str | None) -> str | None:
        """The name of the token if it is valid."""
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        digest = _sha256(token)
        row = await self.db.fetchone("SELECT name, hash, last_used FROM tokens WHERE hash = ?", (digest,))
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        stamp = now()
        if row["last_used"] is None or row["last_used"][:16] != stamp.isoformat()[:16]:  # at most once a minute
            await self.db.execute("UPDATE tokens SET last_used = ? WHERE name = ?", (stamp.isoformat(), row["name"]))
        return str(row["name"])

    async def tokens(self) -> list[TokenInfo]:
        rows = await self.db.fetchall("SELECT name, masked, created, last_used FROM tokens ORDER BY created")
        return [TokenInfo(r["name"], r["masked"], r["created"], r["last_used"]) for r in rows]

    async def revoke_token(self, name: str) -> bool:
        return await self.db.execute("DELETE FROM tokens WHERE name = ?", (name,)) > 0


class LoginThrottle:
    """Failed attempts per client address: after ``limit`` failures within ``window`` seconds, wait.

    An attempt counts as failed from the moment it is let through (``attempt``) until it succeeds, with no
    ``await`` in between: 40 parallel wrong logins evaluate ``limit`` passwords, not more.
    """

    MAX_CLIENTS = 10_000  # addresses remembered; beyond, the oldest go (a flood of addresses cannot fill memory)

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def attempt(self, client: str) -> int:
        """0 if the client may try now (the try is counted as failed until ``succeeded``), else seconds to wait."""
        now = time.monotonic()
        recent = [t for t in self._failures.pop(client, []) if t > now - self.window]
        if len(recent) >= self.limit:
            self._failures[client] = recent
            return max(1, int(recent[0] + self.window - now) + 1)
        self._failures[client] = [*recent, now]  # re-inserted: the dict stays in order of last attempt
        while len(self._failures) > self.MAX_CLIENTS:
            self._failures.pop(next(iter(self._failures)))
        return 0

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
