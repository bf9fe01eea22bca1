"""The one redactor: token shapes, exact secret values, JSON-escaped values, secrets split across reads."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from ccr.core.redact import MASK, Redactor, secrets_from_env

GH = "ghp_" + "A1b2C3d4" * 5
PAT = "github_pat_11ABCDEFG0" + "x" * 70
ANT = "sk-ant-oat01-" + "Zy9_-" * 18
CCR = "ccr_" + "q" * 43
SHAPES = [GH, "gho_" + "a" * 36, "ghu_" + "b" * 36, "ghs_" + "c" * 36, "ghr_" + "d" * 36, PAT, ANT, CCR]


@pytest.mark.parametrize("token", SHAPES)
def test_token_shapes_are_masked(token: str) -> None:
    assert Redactor().redact(f"token={token} end") == f"token={MASK} end"


def test_prose_mentioning_prefixes_is_left_alone() -> None:
    text = "GitHub tokens start with ghp_ or github_pat_; ours with ccr_; the ccr_token table."
    assert Redactor().redact(text) == text


def test_exact_values_and_their_json_form() -> None:
    value = 'pa"ss\\word-' + secrets.token_hex(8)
    redactor = Redactor([value, "short"])
    assert value not in redactor.redact(f"x {value} y")
    encoded = json.dumps({"v": value})
    assert json.loads(redactor.redact(encoded)) == {"v": MASK}
    assert redactor.redact("short stays") == "short stays"  # too short to be a secret


def test_secrets_from_env_and_credentials_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": "acc-123456789",
                    "refreshToken": "ref-123456789",
                    "expiresAt": 1,
                    "scopes": ["user:inference"],
                }
            }
        )
    )
    env = {
        "GITHUB_TOKEN": "gh-value-1234",
        "SESSION_SECRET": "sess-value-1234",
        "MY_SERVICE_TOKEN": "svc-1234567",
        "HOME": "/home/ccr",
        "CCR_CLAUDE_CREDENTIALS_FILE": str(creds),
    }
    found = set(secrets_from_env(env))
    assert {"gh-value-1234", "sess-value-1234", "svc-1234567", "acc-123456789", "ref-123456789"} <= found
    assert "/home/ccr" not in found and str(creds) not in found


def _through_stream(redactor: Redactor, text: str, sizes: list[int]) -> str:
    stream = redactor.stream()
    out, pos, i = "", 0, 0
    while pos < len(text):
        size = sizes[i % len(sizes)]
        out += stream.feed(text[pos : pos + size])
        pos += size
        i += 1
    return out + stream.flush()


@pytest.mark.parametrize("token", [GH, PAT, ANT, CCR, "literal-secret-value-42"])
def test_secret_split_at_every_position_is_masked(token: str) -> None:
    redactor = Redactor(["literal-secret-value-42"])
    text = f"before {token} after\nsecond line {token}"
    expected = f"before {MASK} after\nsecond line {MASK}"
    for cut in range(1, len(text)):
        stream = redactor.stream()
        out = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush()
        assert out == expected, cut


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1, 13], [64]])
def test_stream_in_small_chunks_matches_whole_text(sizes: list[int]) -> None:
    redactor = Redactor(["literal-secret-value-42"])
    text = "\n".join(f"line {i}: {GH} and literal-secret-value-42 and {ANT} done" for i in range(20)) + "\n"
    assert _through_stream(redactor, text, sizes) == redactor.redact(text)


def test_stream_emits_complete_lines_at_once() -> None:
    stream = Redactor([]).stream()
    assert stream.feed("hello world\npartial") == "hello world\n"
    assert stream.flush() == "partial"


def test_stream_does_not_hold_unbounded_text() -> None:
    stream = Redactor([]).stream()
    emitted = stream.feed("x " * 100_000)
    assert len(emitted) >= 199_000
