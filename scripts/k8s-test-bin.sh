#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries the k8s test tier runs as local processes
# (issue 4): kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm.
#
# Everything is compiled from the Go module proxy into a version-keyed cache outside the repository:
#
#     ${CCR_K8S_CACHE:-$HOME/.cache/ccr/k8s}/<kubernetes version>/
#
# The script is idempotent: a binary whose stamp file (<bin>.version) matches the wanted version is kept.
# It prints the directory holding the binaries as the LAST line of stdout, so callers can do
#     export CCR_K8S_BIN_DIR="$(bash scripts/k8s-test-bin.sh | tail -n1)"
#
# Skipping the build: if CCR_K8S_BIN_DIR (or, as a fallback, KUBEBUILDER_ASSETS) points at a directory that
# already holds the binaries, nothing is compiled and that directory is printed.
#
# Knobs (environment): K8S_VERSION, ETCD_VERSION, KWOK_VERSION, HELM_VERSION, CCR_K8S_CACHE, GOPROXY,
# CCR_K8S_SKIP (space separated binaries not to build, e.g. "helm kubectl").
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE_ROOT="${CCR_K8S_CACHE:-$HOME/.cache/ccr/k8s}"
OUT="${CACHE_ROOT}/${K8S_VERSION}"
SKIP=" ${CCR_K8S_SKIP:-} "

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
REQUIRED=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[k8s-test-bin] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_all() {  # dir -> 0 when every required binary is executable there
    local d="$1" b
    for b in "${REQUIRED[@]}"; do [[ -x "$d/$b" ]] || return 1; done
}

# --- 0. ready binaries supplied by the user -----------------------------------------------------------
for var in CCR_K8S_BIN_DIR KUBEBUILDER_ASSETS; do
    dir="${!var:-}"
    if [[ -n "$dir" ]]; then
        if have_all "$dir"; then
            log "using ready binaries from \$$var=$dir (nothing to build)"
            echo "$dir"
            exit 0
        fi
        log "\$$var=$dir lacks some of: ${REQUIRED[*]}; building into the cache instead"
    fi
done

need_go() {
    command -v go >/dev/null || die "go is not installed; install Go >= 1.24 (etcd ${ETCD_VERSION} wants a recent one) or set CCR_K8S_BIN_DIR"
}
mkdir -p "$OUT"
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# GOPROXY is taken from the environment (go's default when unset).

fresh() {  # bin version -> 0 when $OUT/bin exists and was built for version
    [[ -x "$OUT/$1" && -f "$OUT/$1.version" && "$(cat "$OUT/$1.version")" == "$2" ]]
}
skipped() { [[ "$SKIP" == *" $1 "* ]]; }
stamp() { echo "$2" >"$OUT/$1.version"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ccr-k8s-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)

# --- 1. Kubernetes components through a wrapper module -------------------------------------------------
need_k8s=()
for b in "${K8S_BINS[@]}"; do
    skipped "$b" && continue
    if fresh "$b" "$K8S_VERSION"; then log "$b $K8S_VERSION: up to date"; else need_k8s+=("$b"); fi
done
if ((${#need_k8s[@]})); then
    need_go
    log "building ${need_k8s[*]} from k8s.io/kubernetes@$K8S_VERSION"
    minor="${K8S_VERSION#v1.}"  # 34.4
    staging_version="v0.${minor}"   # k8s.io/api etc. are published as v0.34.4 for v1.34.4
    log "downloading k8s.io/kubernetes@$K8S_VERSION (module source, for its go.mod)"
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION from ${GOPROXY:-the Go proxy}"
    # Every `k8s.io/X => ./staging/src/k8s.io/X` replace becomes `k8s.io/X => k8s.io/X <staging_version>`.
    mapfile -t staging < <(grep -E '^\s*(replace\s+)?k8s\.io/[^ ]+\s+=>\s+\./staging/' "$gomod" \
        | sed -E 's/^\s*(replace\s+)?//; s/\s+=>.*//' | sort -u)
    ((${#staging[@]})) || die "found no staging replace directives in $gomod"
    log "k8s.io/kubernetes@$K8S_VERSION has ${#staging[@]} staging modules; pinning them to $staging_version"
    mod="$WORK/k8s"
    mkdir -p "$mod"
    {
        echo "module ccr.local/k8s-test-bin"
        echo
        echo "go $(awk '$1=="go"{print $2; exit}' "$gomod")"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
        echo ")"
    } >"$mod/go.mod"
    # Other replace directives of the tag (non-staging) are carried over verbatim, if any.
    awk '/^replace \(/{inr=1; next} inr && /^\)/{inr=0; next} inr{print} /^replace [^(]/{sub(/^replace /,""); print}' \
        "$gomod" | grep -v '=> \./staging/' | grep -E '=>' | sed 's/^/replace /' >>"$mod/go.mod" || true
    build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    major=1; minor_only="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor_only"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=ccr-proxy-build"
    done
    pkgs=()
    for b in "${need_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    log "resolving module graph (go mod download)"
    (cd "$mod" && go get "k8s.io/kubernetes@$K8S_VERSION" >&2)
    log "compiling ${pkgs[*]} (CGO_ENABLED=0; slow on few cores)"
    t=$(date +%s)
    (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$WORK/out/" "${pkgs[@]}" >&2)
    for b in "${need_k8s[@]}"; do
        install -m 0755 "$WORK/out/$b" "$OUT/$b"
        stamp "$b" "$K8S_VERSION"
    done
    log "kubernetes components built in $(($(date +%s) - t)) s"
fi

# --- 2. etcd through a wrapper module (its own go.mod replaces siblings with ../ paths) -------------------
if ! skipped etcd; then
    if fresh etcd "$ETCD_VERSION"; then
        log "etcd $ETCD_VERSION: up to date"
    else
        need_go
        log "building etcd from go.etcd.io/etcd/server/v3@$ETCD_VERSION"
        mod="$WORK/etcd"
        mkdir -p "$mod"
        cat >"$mod/go.mod" <<EOF
module ccr.local/etcd-test-bin

go 1.24

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
EOF
        t=$(date +%s)
        (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 \
            && go build -trimpath -ldflags "-s -w" -o "$WORK/etcd-bin" go.etcd.io/etcd/server/v3 >&2)
        install -m 0755 "$WORK/etcd-bin" "$OUT/etcd"
        stamp etcd "$ETCD_VERSION"
        log "etcd built in $(($(date +%s) - t)) s"
    fi
fi

# --- 3. kwok and helm with go install -----------------------------------------------------------------
goinstall() {  # bin module-path version
    local bin="$1" pkg="$2" ver="$3" t
    skipped "$bin" && return 0
    if fresh "$bin" "$ver"; then log "$bin $ver: up to date"; return 0; fi
    need_go
    log "go install $pkg@$ver"
    t=$(date +%s)
    mkdir -p "$WORK/gobin"
    GOBIN="$WORK/gobin" GOFLAGS="-buildvcs=false" go install -trimpath -ldflags "-s -w $4" "$pkg@$ver" >&2
    install -m 0755 "$WORK/gobin/$bin" "$OUT/$bin"
    stamp "$bin" "$ver"
    log "$bin built in $(($(date +%s) - t)) s"
}
goinstall kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
goinstall helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

have_all "$OUT" || die "some binaries are missing in $OUT: want ${REQUIRED[*]}"
log "done in $(($(date +%s) - T0)) s; binaries in $OUT:"
for b in "${REQUIRED[@]}" kubectl helm; do
    [[ -x "$OUT/$b" ]] && log "  $b $(cat "$OUT/$b.version" 2>/dev/null || echo '?')"
done
echo "$OUT"
