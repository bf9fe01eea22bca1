#!/usr/bin/env bash
# Run the k8s test tier (tests/k8s, tests/operator; marker `k8s`) against a throw-away kind cluster.
# Needs Docker (or podman) and kind; for users with Docker - these CI machines have none and use the
# process-based control plane instead (scripts/k8s-test-bin.sh + the `kube` fixture).
#
#   bash scripts/e2e-kind.sh [extra pytest args]
#
# Environment: KIND_CLUSTER (default ccr-e2e), KIND_NODE_IMAGE (default kindest/node:v1.34.0),
# KEEP_CLUSTER=1 to keep the cluster afterwards, PYTHON (default python3).
set -euo pipefail

CLUSTER="${KIND_CLUSTER:-ccr-e2e}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[e2e-kind] %s\n' "$*" >&2; }
command -v kind >/dev/null || { log "kind is not installed (https://kind.sigs.k8s.io)"; exit 2; }
docker info >/dev/null 2>&1 || podman info >/dev/null 2>&1 \
    || { log "no working Docker/podman: kind cannot run here"; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ccr-e2e-kind.XXXXXX")"
KUBECONFIG_FILE="$WORK/kubeconfig"
created=0
cleanup() {
    local rc=$?
    if [[ $created == 1 && "${KEEP_CLUSTER:-0}" != 1 ]]; then
        log "deleting kind cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    elif [[ $created == 1 ]]; then
        log "keeping cluster $CLUSTER; kubeconfig: $KUBECONFIG_FILE"
    fi
    [[ "${KEEP_CLUSTER:-0}" == 1 ]] || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing existing kind cluster $CLUSTER (it is left in place)"
else
    log "creating kind cluster $CLUSTER ($NODE_IMAGE)"
    created=1
    kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --wait 120s --kubeconfig "$KUBECONFIG_FILE"
fi
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
chmod 600 "$KUBECONFIG_FILE"

# the tests pull busybox for their Job pods; preload it when available locally to avoid rate limits
if docker image inspect busybox:1.36 >/dev/null 2>&1; then
    kind load docker-image busybox:1.36 --name "$CLUSTER" || true
fi

export CCR_TEST_KUBECONFIG="$KUBECONFIG_FILE"
log "running the k8s tier against $(kubectl --kubeconfig "$KUBECONFIG_FILE" config view --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || echo kind)"
cd "$REPO"
paths=(tests/k8s)
[[ -d tests/operator ]] && paths+=(tests/operator)
"$PYTHON" -m pytest "${paths[@]}" -m k8s "$@"
