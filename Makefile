# MAIP Events. The two everyday commands are `make run` and `make test`.
# A fresh machine needs only Python 3.11+, pip, make and git: everything else is installed into .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
DYNAMODB_PORT ?= 8000
PYTEST_ARGS ?=
# Hash-locked dependencies (`make lock` regenerates both): the test/dev environment, and the layer's runtime
# subset that `sam build` installs. Same versions in both; tests/unit/test_dependency_lock.py checks it.
LOCK := requirements-dev.lock
LAYER_LOCK := layers/common/requirements.txt
UV_COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 $(if $(UPGRADE),--upgrade)

# Nothing here talks to a real AWS account: tests, the local stack and the SAM tools get fake credentials,
# a fixed region and no telemetry. (Variables given on the make command line still win.)
export AWS_DEFAULT_REGION := us-east-1
export AWS_ACCESS_KEY_ID := testing
export AWS_SECRET_ACCESS_KEY := testing
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled
export SAM_CLI_TELEMETRY := 0
unexport AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN

.PHONY: help venv install lock run test browser lint-template build bench clean

help:
	@echo "make run            start the local stack on http://127.0.0.1:$(PORT) (embedded DynamoDB on :$(DYNAMODB_PORT))"
	@echo "make test           run the whole test suite (PYTEST_ARGS='-k ...' to narrow it; installs chromium if missing)"
	@echo "make lint-template  sam validate --lint, cfn-lint on template.yaml and on its SAM translation"
	@echo "make build          sam build (no Docker; needs the template's python3.x on PATH)"
	@echo "make bench          run every bench/*.py (prints ratios; never part of the tests)"
	@echo "make install        create $(VENV) and install the locked dependencies, then the project"
	@echo "make lock           re-resolve $(LOCK) and $(LAYER_LOCK) after a dependency change (UPGRADE=1: newest)"
	@echo "make clean          remove build and test artifacts (keeps $(VENV))"

# Re-runs only when pyproject.toml or the lock changes (or the stamp is missing). Exact versions with hashes
# from the lock, then the project itself without resolving anything.
$(STAMP): pyproject.toml $(LOCK)
	@if [ ! -x $(BIN)/python ]; then \
	  $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MAIP Events needs Python 3.11+ (found " + sys.version.split()[0] + "); try: make PYTHON=python3.11")' || exit 1; \
	  echo "Creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

venv install: $(STAMP)

# Adding a dependency: add it to pyproject.toml (and, if Lambda code imports it, to layers/common/requirements.in),
# then `make lock install`. The layer is resolved within the dev lock, so both carry the same versions.
lock:
	@[ -x $(BIN)/uv ] || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(UV_COMPILE) pyproject.toml layers/common/requirements.in --extra dev -o $(LOCK)
	$(UV_COMPILE) layers/common/requirements.in -c $(LOCK) -o $(LAYER_LOCK)

run: $(STAMP)
	$(BIN)/maip-events serve --port $(PORT) --dynamodb-port $(DYNAMODB_PORT)

# Two runs. First the tests that serve no stack (unit, integration: pure Python on moto; infra: sam, cfn-lint) on
# two xdist workers (measured on 2 CPUs: ~415 s one after the other, 111-127 s on two workers); then the rest
# serially: each of those serves a stack that already keeps both CPUs busy (xdist measured no faster there).
# PYTEST_ARGS='...' runs exactly what it names, in one plain run (add -n 2 yourself). Both runs always run; any
# failure, including "no tests collected" (exit 5), fails the target.
IN_PROCESS_TESTS := tests/unit tests/integration tests/infra
test: $(STAMP) browser
ifeq ($(strip $(PYTEST_ARGS)),)
	status=0; \
	$(BIN)/python -m pytest -q --durations=15 -n 2 $(IN_PROCESS_TESTS) || status=$$?; \
	$(BIN)/python -m pytest -q --durations=15 tests $(addprefix --ignore=,$(IN_PROCESS_TESTS)) || status=$$?; \
	exit $$status
else
	$(BIN)/python -m pytest -q --durations=15 $(PYTEST_ARGS)
endif

# The console's browser tests (tests/browser) drive Debian's Chromium through Playwright's executable_path
# (never `playwright install`, which downloads its own build). Installed here when missing; without it the
# run stops with this message instead of skipping those tests.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
browser:
	@[ -x $(CHROMIUM) ] || { echo "Installing Debian's chromium for the browser tests ($(CHROMIUM) is missing)"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; true; }
	@[ -x $(CHROMIUM) ] || { echo "error: $(CHROMIUM) is missing and could not be installed;" \
	  "install it (apt-get install -y chromium) or point CHROMIUM=... at a Chromium binary." >&2; exit 1; }

lint-template: $(STAMP)
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/infra/test_template.py -k translated

# The venv's bin comes first on PATH so that its python3.x can serve the build when it matches the runtime.
build: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --template template.yaml

bench: $(STAMP)
	@set -e; for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; \
	  echo "== $$script"; $(BIN)/python "$$script"; \
	done

clean:
	rm -rf .aws-sam .pytest_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
