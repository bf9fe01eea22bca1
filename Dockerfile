# syntax=docker/dockerfile:1
#
# One Dockerfile, two images:
#
#   docker build -t ccr .                        # default (last stage `app`): API/dashboard + operator
#       docker run ccr                           #   -> `ccr serve` (port 7334, data in /data)
#       docker run ccr operator                  #   -> `ccr operator` (the Helm chart passes `args: [operator]`)
#   docker build --target local -t ccr-local .   # single-container local mode (docker-compose.yml):
#                                                #   the same app plus git, gh and the claude CLI
#
# BASE_IMAGE must provide python3 (>= 3.11) with its venv module and Debian's apt; the default is the
# official slim image. scripts/build-images.sh passes a Debian base made with debootstrap instead, because
# these machines reach no container registry.
ARG BASE_IMAGE=python:3.12-slim-bookworm

# ---- build: the package and its dependencies in a virtualenv -------------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/ccr
COPY pyproject.toml ./
COPY src ./src
# Not an editable install: the image keeps only /opt/ccr, not the source tree.
RUN /opt/ccr/bin/pip install --no-cache-dir ".[api,operator]" \
    && /opt/ccr/bin/python3 -c "import ccr"

# ---- claude-cli: the native claude binary, fetched with npm (node is not needed to run it) -------------
FROM ${BASE_IMAGE} AS claude-cli
# The pin lives in scripts/versions.env (build-images.sh passes it); this default must match it (a test checks).
ARG CLAUDE_CODE_VERSION=2.1.332
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
    && rm -rf /var/lib/apt/lists/*
# The package's postinstall copies the platform's native binary over bin/claude.exe; `--version` proves
# that it did (the placeholder it replaces is a script that only prints instructions).
RUN npm install --global --no-audit --no-fund "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
    && install -m 0755 "$(npm root --global)/@anthropic-ai/claude-code/bin/claude.exe" /opt/claude \
    && /opt/claude --version

# ---- runtime-base: what both final images share ------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime-base
ENV PATH=/opt/ccr/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/ccr \
    PORT=7334 \
    CCR_DATA_DIR=/data
# A fixed non-root uid/gid (10001) that the Helm chart's securityContext names too.
RUN groupadd --system --gid 10001 ccr \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/ccr --create-home --shell /usr/sbin/nologin ccr \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/ccr /opt/ccr

# ---- server: what both runnable images share ---------------------------------------------------------
FROM runtime-base AS server
USER 10001:10001
WORKDIR /home/ccr
VOLUME ["/data"]
EXPOSE 7334
# Only meaningful for `ccr serve`; Kubernetes ignores HEALTHCHECK and the chart defines its own probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '7334'), timeout=4)"]
ENTRYPOINT ["ccr"]
CMD ["serve"]

# ---- local: `docker compose up` — tasks run as local processes, so git, gh and claude are inside -------
FROM server AS local
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git gh openssh-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=claude-cli /opt/claude /usr/local/bin/claude
ENV CCR_BACKEND=local
USER 10001:10001

# ---- app (default, last): API/dashboard (`ccr serve`) and operator (`ccr operator`) -------------------
FROM server AS app
