"""One redactor for everything that leaves a process: logs, events, PR text, results.

Two kinds of secret are hidden behind ``[REDACTED]``:

* token *shapes* (GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_``, Anthropic
  ``sk-ant-...``, our own ``ccr_`` API tokens), whoever they belong to;
* the exact *values* of the secrets this process was given (``GITHUB_TOKEN``, ``CLAUDE_CODE_OAUTH_TOKEN``,
  the tokens inside a Claude credentials file, ``SESSION_SECRET``...), in their raw and JSON-escaped forms.

Both go into one compiled regex alternation, so a line is scanned once. :class:`StreamRedactor` applies it to
a byte-or-text stream read in arbitrary chunks: it holds back a tail that may be the start of a secret
until the next chunk or a newline (secrets never contain one) decides it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK = "[REDACTED]"

# Token shapes. Lengths are lower bounds so that a prefix in prose ("ghp_ tokens") is left alone.
# Token shapes as (literal prefix, pattern of the rest). Lengths are lower bounds so that a prefix in prose
# ("ghp_ tokens") is left alone.
TOKEN_SHAPES: tuple[tuple[str, str], ...] = (
    *((f"gh{kind}_", r"[A-Za-z0-9]{20,}") for kind in "pousr"),
    ("github_pat_", r"[A-Za-z0-9_]{20,}"),
    ("sk-ant-", r"[A-Za-z0-9_-]{16,}"),
    ("ccr_", r"[A-Za-z0-9_-]{24,}"),
)
# Characters a shaped token is made of: a chunk that ends in a run of them may end mid-token.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Longest run of token characters held back while waiting for more input (real tokens are < 200).
_MAX_TOKEN_TAIL = 512
# Past this much buffered text without a newline, flush anyway: no secret is that long.
_MAX_HOLD = 64 * 1024
# Values shorter than this are not treated as secrets: masking "abc" everywhere would shred the logs.
MIN_SECRET_LENGTH = 8

# Environment variables whose values are secrets, by exact name or by suffix.
SECRET_ENV_NAMES: frozenset[str] = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "SESSION_SECRET",
        "CCR_ADMIN_PASSWORD",
    }
)
SECRET_ENV_SUFFIXES: tuple[str, ...] = ("_TOKEN", "_SECRET", "_PASSWORD", "_API_KEY", "_PRIVATE_KEY")
CREDENTIALS_FILE_ENV = "CCR_CLAUDE_CREDENTIALS_FILE"


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """Secret values in an environment: known names, ``*_TOKEN``-style names, a credentials file's tokens."""
    values = [
        value for name, value in environ.items() if name in SECRET_ENV_NAMES or name.endswith(SECRET_ENV_SUFFIXES)
    ]
    cred_file = environ.get(CREDENTIALS_FILE_ENV)
    if cred_file:
        values.extend(secrets_from_credentials_file(Path(cred_file)))
    return values


def secrets_from_credentials_file(path: Path) -> list[str]:
    """The token strings inside a Claude ``.credentials.json`` (accessToken, refreshToken...)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(secret_strings(data))


def secret_strings(node: Any, key: str = "") -> Iterable[str]:
    """String values under keys that name a secret (``accessToken``, ``refresh_token``, ``apiKey``...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from secret_strings(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from secret_strings(item, key)
    elif isinstance(node, str) and re.search(r"token|secret|key|password", key, re.IGNORECASE):
        yield node


def trie_pattern(entries: Iterable[tuple[str, str]]) -> str:
    """One regex for many (literal prefix, rest-pattern) pairs, with shared prefixes factored out.

    ``re`` tries alternatives one by one at every position whose first character could match; as a trie
    each position costs one or two character tests instead of one per secret (2-3x faster on real logs).
    Longer continuations come before a shorter match ends, so a secret containing another is masked whole.
    """
    trie: dict[str, Any] = {}
    for prefix, rest in entries:
        node = trie
        for char in prefix:
            node = node.setdefault(char, {})
        node.setdefault("", []).append(rest)

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        branches += sorted(set(node.get("", [])), key=len, reverse=True)
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return build(trie)


class Redactor:
    """Replaces token shapes and known secret values with :data:`MASK`. Immutable and thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secrets)
        literals: set[str] = set()
        for raw in self._secrets:
            value = raw.strip()
            if len(value) < MIN_SECRET_LENGTH:
                continue
            literals.add(value)
            literals.add(json.dumps(value)[1:-1])  # as it appears inside a JSON string
        self._regex = re.compile(trie_pattern([(v, "") for v in literals] + list(TOKEN_SHAPES)))
        self.max_literal = max((len(v) for v in literals), default=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Redactor:
        env = os.environ if environ is None else environ
        return cls([*secrets_from_env(env), *extra])

    def with_secrets(self, extra: Iterable[str]) -> Redactor:
        """A new redactor that also hides ``extra`` (e.g. tokens read after start-up)."""
        return Redactor([*self._secrets, *extra])

    def redact(self, text: str) -> str:
        return self._regex.sub(MASK, text)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def spans(self, text: str) -> Iterable[re.Match[str]]:
        return self._regex.finditer(text)


class StreamRedactor:
    """Redacts text that arrives in chunks, also when a secret is split across two of them.

    ``feed`` returns what is safe to emit now; ``flush`` returns the rest at end of stream. Everything after
    the last newline that could still grow into a secret is held back: at most the longest known secret
    value, or a trailing run of token characters.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._buf = ""
        self._hold = max(redactor.max_literal - 1, 0)

    def feed(self, chunk: str) -> str:
        if not chunk:
            return ""
        buf = self._buf + chunk
        newline = buf.rfind("\n")
        out = ""
        if newline >= 0:
            out = self._redactor.redact(buf[: newline + 1])
            buf = buf[newline + 1 :]
        cut = self._safe_cut(buf)
        if cut > 0:
            text, cut = self._redact_prefix(buf, cut)
            out += text
            buf = buf[cut:]
        self._buf = buf
        return out

    def flush(self) -> str:
        out = self._redactor.redact(self._buf)
        self._buf = ""
        return out

    def _safe_cut(self, buf: str) -> int:
        """How much of ``buf`` (no newline in it) can be emitted without splitting a possible secret."""
        if len(buf) > _MAX_HOLD:
            return len(buf)
        cut = len(buf) - self._hold
        # A trailing run of token characters may be the first half of a shaped token.
        run_start = len(buf)
        floor = max(len(buf) - _MAX_TOKEN_TAIL, 0)
        while run_start > floor and buf[run_start - 1] in _TOKEN_CHARS:
            run_start -= 1
        return max(min(cut, run_start), 0)

    def _redact_prefix(self, buf: str, cut: int) -> tuple[str, int]:
        """Redact ``buf[:cut]`` using matches found in the whole buffer; shrink the cut before any match
        that crosses it (that match is then decided with the next chunk). Returns the text and the cut."""
        pieces: list[str] = []
        pos = 0
        for match in self._redactor.spans(buf):
            if match.start() >= cut:
                break
            if match.end() > cut:
                cut = match.start()
                break
            pieces.append(buf[pos : match.start()])
            pieces.append(MASK)
            pos = match.end()
        pieces.append(buf[pos:cut])
        return "".join(pieces), cut
