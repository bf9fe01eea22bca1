#!/usr/bin/env bash
# Install the pinned Claude Code CLI (npm: @anthropic-ai/claude-code) into a version-keyed cache outside the
# repository, for the tests that run the real CLI against the fake Anthropic API (tests/doubles/fake_anthropic.py):
#
#     ${CCR_CLAUDE_CACHE:-$HOME/.cache/ccr/claude}/<version>/bin/claude
#
# The version comes from scripts/versions.env (CLAUDE_CODE_VERSION; the environment may override it).
# Idempotent: a directory whose stamp matches the version is kept, so a warm run only reads a file. It prints
# the directory holding the `claude` executable as the LAST line of stdout:
#     export CCR_TEST_CLAUDE_BIN="$(bash scripts/claude-cli.sh | tail -n1)/claude"
#
# The npm package is a thin wrapper whose postinstall (Node.js >= 22) links its platform package's native
# binary (@anthropic-ai/claude-code-linux-x64, ~400 MB, no Node.js needed to run it) over bin/claude.exe.
# The script skips that postinstall (Debian's npm comes with an older Node.js) and links the platform
# package's binary itself.
# Needs npm (Debian: apt-get install nodejs npm) and the npm registry, only on a cold run.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
if [[ -z "${CLAUDE_CODE_VERSION:-}" ]]; then
    # shellcheck source=versions.env
    source "$HERE/versions.env"
fi
VERSION="$CLAUDE_CODE_VERSION"
CACHE_ROOT="${CCR_CLAUDE_CACHE:-$HOME/.cache/ccr/claude}"
OUT="$CACHE_ROOT/$VERSION"
STAMP="$OUT/bin/.version"

log() { printf '[claude-cli] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
fresh() { [[ -x "$OUT/bin/claude" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; }

if fresh; then
    log "claude $VERSION: up to date in $OUT"
    echo "$OUT/bin"
    exit 0
fi

mkdir -p "$CACHE_ROOT"
# One installer at a time (several worktrees may run `make test` at once); the loser finds it fresh.
exec 9>"$CACHE_ROOT/.lock"
flock 9
if fresh; then
    echo "$OUT/bin"
    exit 0
fi
command -v npm >/dev/null || die "npm is missing (Debian: apt-get install -y nodejs npm)"

T0=$(date +%s)
WORK="$(mktemp -d "$CACHE_ROOT/.install-$VERSION.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"  # mktemp makes it 0700; an unprivileged test user must reach the binary
log "installing @anthropic-ai/claude-code@$VERSION from npm into $OUT"
npm install --prefix "$WORK/npm" --no-save --no-audit --no-fund --no-package-lock --ignore-scripts \
    --loglevel=error "@anthropic-ai/claude-code@$VERSION" >&2

case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Claude Code binary for $(uname -m)" ;;
esac
musl=""
if ldd --version 2>&1 | grep -qi musl; then musl="-musl"; fi
modules="$WORK/npm/node_modules/@anthropic-ai"
exe=""
for candidate in "$modules/claude-code-linux-$arch$musl/claude" "$modules/claude-code/bin/claude.exe"; do
    # (bin/claude.exe is a stub that only prints instructions unless a postinstall replaced it)
    if [[ -x "$candidate" ]] && "$candidate" --version 2>/dev/null | grep -qx "$VERSION (Claude Code)"; then
        exe="$candidate"
        break
    fi
done
[[ -n "$exe" ]] || die "npm installed @anthropic-ai/claude-code@$VERSION but no binary answers --version with $VERSION"

mkdir -p "$WORK/bin"
ln -s "../${exe#"$WORK"/}" "$WORK/bin/claude"  # relative: the directory is renamed to $OUT below
echo "$VERSION" >"$WORK/bin/.version"
rm -rf "$OUT"
mv "$WORK" "$OUT"
trap - EXIT
log "claude $VERSION installed in $(($(date +%s) - T0)) s: $("$OUT/bin/claude" --version)"
echo "$OUT/bin"
