# claude-code-runner: `make run` starts local mode on :7334, `make test` runs every test tier.
# Both work from a fresh clone: they make the virtualenv and install what they need first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
K8S_BIN_SCRIPT := scripts/k8s-test-bin.sh
# The pinned Claude Code CLI (scripts/versions.env) in ~/.cache/ccr/claude/<version>; the real-CLI tests read
# CCR_TEST_CLAUDE_BIN (and find the cache themselves when it is unset).
CLAUDE_CLI := claude_dir="$$(bash scripts/claude-cli.sh | tail -n1)" && export CCR_TEST_CLAUDE_BIN="$$claude_dir/claude"

.PHONY: run test test-fast lint crd deps browser-deps k8s-bin claude-cli e2e-kind bench images clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

deps: $(VENV)/.installed

## Local mode: API + dashboard on http://localhost:7334, data in ./data
run: deps
	$(VENV)/bin/ccr serve

## Lint (ruff, mypy strict, the layering contracts), then every tier: unit, API, local, job, dashboard (Chromium), Kubernetes, chart
test: deps browser-deps lint
	$(CLAUDE_CLI) && bin_dir="$$(bash $(K8S_BIN_SCRIPT) | tee /dev/stderr | tail -n1)" && \
	CCR_K8S_BIN_DIR="$$bin_dir" $(PY) -m pytest

## The tiers that need neither a browser nor a control plane
test-fast: deps
	$(CLAUDE_CLI) && $(PY) -m pytest -m "not k8s and not browser"

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## Regenerate the CRD in the chart from src/ccr/core/model.py
crd: deps
	$(VENV)/bin/ccr crd -o charts/claude-code-runner/crds/claudetasks.ccr.dev.yaml

## Debian's Chromium for the Playwright tests (Playwright's own browser download needs the internet)
browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

## kube-apiserver, controller-manager, scheduler, etcd, kwok, helm, kubectl: built once into ~/.cache/ccr/k8s
k8s-bin:
	bash $(K8S_BIN_SCRIPT)

## The pinned Claude Code CLI from npm, once into ~/.cache/ccr/claude (the real-CLI tests run it)
claude-cli:
	bash scripts/claude-cli.sh

## The same end-to-end tests on a kind cluster (needs Docker and kind)
e2e-kind: deps
	bash scripts/e2e-kind.sh

## Every benchmark prints its numbers; those below target are listed at the end
bench: deps
	@slow=""; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || slow="$$slow $$b"; done; \
	test -z "$$slow" || { echo "below target:$$slow"; exit 1; }

images:
	bash scripts/build-images.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
