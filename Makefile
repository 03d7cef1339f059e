# Run `make help` for the targets. Everything runs inside .venv, created on demand.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=
CHART := charts/atomic-operator

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $$(hack/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The bring-your-own-agent test serves a real Atomic Agents agent. Its full dependency
	@# tree is 414 MB (litellm, textual, ...), none of which the agent class needs.
	$(PY) -m pip install --quiet --no-deps 'atomic-agents==2.15.0'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the operator, the runtime and the dev tools.

.PHONY: binaries
binaries: venv ## Build the control-plane binaries into ~/.cache/atomic-operator (once).
	$(BIN)/atomicctl dev build

##@ Development

.PHONY: generate
generate: venv ## Regenerate the CRDs, docs/api-reference.md and the chart's values and CRDs.
	$(BIN)/atomicctl crds --out crds --reference docs/api-reference.md --chart $(CHART)

.PHONY: verify
verify: venv ## Fail when generated files differ from what the models produce.
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  mkdir $$tmp/crds $$tmp/chart && \
	  $(BIN)/atomicctl crds --out $$tmp/crds --reference $$tmp/api-reference.md \
	    --chart $$tmp/chart >/dev/null && \
	  stale=0 && \
	  { diff -ru crds $$tmp/crds && diff -u docs/api-reference.md $$tmp/api-reference.md; } \
	    || stale=1; \
	  for f in $$(cd $$tmp/chart && find . -type f); do \
	    diff -u $(CHART)/$$f $$tmp/chart/$$f || stale=1; done; \
	  if [ $$stale = 1 ]; then \
	    echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1; fi

.PHONY: lint
lint: venv ## ruff, mypy --strict, import layers; shellcheck on hack/, hadolint on Dockerfiles.
	$(BIN)/ruff check operator agent_image devtools tests bench
	$(BIN)/mypy operator/atomic_operator agent_image/atomic_runtime devtools/atomic_devcluster
	$(BIN)/lint-imports
	$(BIN)/shellcheck hack/*.sh hack/find-python
	$(BIN)/hadolint Dockerfile agent_image/Dockerfile

.PHONY: images
images: venv ## Build the operator and runtime images (a local Docker engine is started if none runs).
	$(BIN)/atomicctl dev images $(IMAGES_ARGS)

.PHONY: test
test: venv binaries images ## Run every test: unit, runtime, real API server, and e2e on the real node.
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the tests that need no control plane.
	$(BIN)/pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: venv binaries images ## Only the end-to-end suite: helm install from the images on the real node.
	$(BIN)/pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

.PHONY: test-k8s
test-k8s: venv binaries ## Only the tests against the real control plane.
	$(BIN)/pytest -p no:cacheprovider tests/k8s $(PYTEST_ARGS)

.PHONY: bench-smoke
bench-smoke: venv binaries ## Run every bench/*.py once at its tiny SMOKE_ARGS size (CI).
	$(PY) -m bench._smoke $(BENCH)

##@ Running

.PHONY: run
run: venv binaries ## Start the embedded control plane, the operator and the examples.
	$(BIN)/atomicctl dev demo $(RUN_ARGS)

.PHONY: clean
clean: ## Remove the venv and local control-plane data (the binary cache stays).
	rm -rf $(VENV) .devcluster .pytest_cache .mypy_cache .ruff_cache
