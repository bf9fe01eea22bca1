#!/usr/bin/env bash
# Build the project's images with podman on a machine that reaches no container registry (opt-in; not
# part of the test suite). See shared CONTAINERS.md for the recipe this follows.
#
#   bash scripts/build-images.sh            # base + app (Dockerfile) + job (Dockerfile.job, if present)
#   bash scripts/build-images.sh app local  # only some targets: base, app, local, job
#
# 1. base:  a Debian bookworm root made with debootstrap (python3, venv, ca-certificates, apt), imported as
#           localhost/ccr-base:bookworm. The Dockerfiles take it through `--build-arg BASE_IMAGE=...`; for
#           users they default to the official python/node images, so nothing in them is specific to here.
# 2. app:   Dockerfile (default target)      -> localhost/ccr:dev          (`ccr serve` / `ccr operator`)
# 3. local: Dockerfile --target local        -> localhost/ccr-local:dev    (docker-compose.yml's image)
# 4. job:   Dockerfile.job                   -> localhost/ccr-job:dev
#
# The host's CA bundle and pip/npm configuration are bind-mounted into every RUN step, because package
# registries are reached through a TLS-inspecting proxy here; the images themselves do not keep them.
#
# Needs (as root): apt-get install -y podman buildah debootstrap runc, and in /etc/containers/containers.conf:
#     [containers]
#     default_ulimits = []
# The Claude Code CLI version comes from scripts/versions.env (the one pin; the Dockerfiles' ARG defaults match it).
# Knobs: CCR_IMAGE_TAG (dev), CCR_BASE_IMAGE (skip debootstrap and use this base), DEBIAN_MIRROR.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=versions.env
source scripts/versions.env  # CLAUDE_CODE_VERSION, passed to both Dockerfiles below
TAG="${CCR_IMAGE_TAG:-dev}"
BASE="${CCR_BASE_IMAGE:-localhost/ccr-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(base app job)

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
wants() { local t; for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }

command -v podman >/dev/null || die "podman is missing: apt-get install -y podman buildah debootstrap runc"
# Debian's default runtime (crun) refuses these machines' hybrid cgroups ("cgroups in hybrid mode not
# supported"); runc works. CCR_OCI_RUNTIME overrides.
RUNTIME="${CCR_OCI_RUNTIME:-}"
if [[ -z "$RUNTIME" ]] && command -v runc >/dev/null; then RUNTIME=runc; fi
podman() { if [[ -n "$RUNTIME" ]]; then command podman --runtime "$RUNTIME" "$@"; else command podman "$@"; fi; }
if ! grep -qs 'default_ulimits *= *\[\]' /etc/containers/containers.conf "${CONTAINERS_CONF:-/dev/null}"; then
    log "warning: containers.conf lacks 'default_ulimits = []'; RUN steps may fail with 'error setting rlimit'"
fi

# Build-time only mounts: the CA bundle (pip, npm, git honour it through the config below).
MOUNTS=()
CA=/etc/ssl/certs/ca-certificates.crt
if [[ -f "$CA" ]]; then
    MOUNTS+=(--volume "$CA:/etc/ssl/certs/ca-certificates.crt:ro")
    CONF="$(mktemp -d)"
    trap 'rm -rf "$CONF"' EXIT
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$CONF/pip.conf"
    printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$CONF/npmrc"
    MOUNTS+=(--volume "$CONF/pip.conf:/etc/pip.conf:ro" --volume "$CONF/npmrc:/etc/npmrc:ro")
fi

seconds() { echo $(($(date +%s) - $1)); }
size() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

if wants base && [[ -z "${CCR_BASE_IMAGE:-}" ]]; then
    if podman image exists "$BASE"; then
        log "base $BASE exists (podman rmi it to rebuild)"
    else
        command -v debootstrap >/dev/null || die "debootstrap is missing"
        t=$(date +%s)
        root="$(mktemp -d /tmp/ccr-rootfs.XXXXXX)"
        log "debootstrap bookworm -> $root"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$root" "$MIRROR" >&2
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
        tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >&2
        rm -rf "$root"
        log "base $BASE built in $(seconds "$t") s ($(size "$BASE"))"
    fi
fi

build() {  # image dockerfile [extra podman build args...]
    local image="$1" file="$2" t
    shift 2
    t=$(date +%s)
    log "building $image from $file"
    podman build --network host --pull=never --layers --format docker \
        --build-arg "BASE_IMAGE=$BASE" --build-arg "CLAUDE_CODE_VERSION=$CLAUDE_CODE_VERSION" "${MOUNTS[@]}" \
        -f "$file" -t "$image" "$@" . >&2
    log "$image built in $(seconds "$t") s ($(size "$image"))"
}

wants app && build "localhost/ccr:$TAG" Dockerfile
wants local && build "localhost/ccr-local:$TAG" Dockerfile --target local
if wants job; then
    if [[ -f Dockerfile.job ]]; then
        build "localhost/ccr-job:$TAG" Dockerfile.job
    else
        log "Dockerfile.job does not exist yet; skipping the job image"
    fi
fi

# Smoke checks: the entry points exist and run as the non-root user.
serve_smoke() {  # image: `ccr serve` as the chart runs it (read-only root, writable /tmp and /data, no caps)
    local image="$1" port name ok=""
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    name="ccr-smoke-$$"
    podman run -d --name "$name" --read-only --tmpfs /tmp -v "$name-data:/data" --cap-drop ALL --no-healthcheck \
        --security-opt no-new-privileges --network host -e CCR_HOST=127.0.0.1 -e PORT="$port" \
        -e SESSION_SECRET=build-images-smoke-test-secret "$image" >/dev/null
    for _ in $(seq 60); do
        if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null
        then ok=1; break; fi
        sleep 0.5
    done
    [[ -n "$ok" ]] || podman logs "$name" >&2 || true
    podman rm -f "$name" >/dev/null; podman volume rm -f "$name-data" >/dev/null
    [[ -n "$ok" ]] || die "$image: \`ccr serve\` did not answer /health (log above)"
    log "$image: ccr serve answers /health with a read-only root filesystem"
}
if wants app; then
    podman run --rm --no-healthcheck --network none --entrypoint id "localhost/ccr:$TAG" -u | grep -qx 10001 \
        || die "localhost/ccr:$TAG does not run as uid 10001"
    podman run --rm --no-healthcheck --network none --entrypoint python3 "localhost/ccr:$TAG" -c 'import ccr, fastapi, kopf' \
        || die "localhost/ccr:$TAG lacks its packages"
    podman run --rm --no-healthcheck --network none --read-only --tmpfs /tmp "localhost/ccr:$TAG" operator --help >/dev/null \
        || die "localhost/ccr:$TAG: \`ccr operator --help\` fails"
    serve_smoke "localhost/ccr:$TAG"
fi
if wants local; then
    podman run --rm --no-healthcheck --network none --entrypoint claude "localhost/ccr-local:$TAG" --version \
        || die "localhost/ccr-local:$TAG has no working claude CLI"
    serve_smoke "localhost/ccr-local:$TAG"
fi
if wants job && [[ -f Dockerfile.job ]]; then
    podman run --rm --no-healthcheck --network none --entrypoint id "localhost/ccr-job:$TAG" -u | grep -qx 10001 \
        || die "localhost/ccr-job:$TAG does not run as uid 10001"
    podman run --rm --no-healthcheck --network none --read-only --tmpfs /tmp --entrypoint claude \
        "localhost/ccr-job:$TAG" --version || die "localhost/ccr-job:$TAG has no working claude CLI"
    for tool in git gh; do
        podman run --rm --no-healthcheck --network none --entrypoint "$tool" "localhost/ccr-job:$TAG" --version \
            >/dev/null || die "localhost/ccr-job:$TAG lacks $tool"
    done
    podman run --rm --no-healthcheck --network none --entrypoint python3 "localhost/ccr-job:$TAG" \
        -c 'import ccr.job.pipeline' || die "localhost/ccr-job:$TAG cannot import the pipeline"
fi
log "done"
