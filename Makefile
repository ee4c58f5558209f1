# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
# jsii (under aws-cdk-lib) prints a large banner on Node 20; the CDK itself works there.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# mkdocs-material prints a banner about its successor on every build; the build is unaffected.
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test lint venv clean synth layer soak docs

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@# The runtime library lives where the Lambda layer is built from; put it on the path.
	@echo "$(CURDIR)/layers/runtime/python" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tidegate-runtime.pth"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# The CDK CLI, pinned in package-lock.json and run with `npx cdk`; never a global install.
node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

synth: $(STAMP) node_modules
	npx --no-install cdk synth --no-notices --quiet

# Builds the runtime layer (pip for the Lambda platform, no Docker) and prints unzipped sizes.
layer: $(STAMP)
	$(PY) -m infra.layer

demo: $(STAMP)
	$(VENV)/bin/tidegate demo

# A million events under chaos; prints the accounting (takes several minutes).
soak: $(STAMP)
	$(VENV)/bin/tidegate demo --events 1000000 --users 200 --shards 4 --batch-size 5000 \
		--max-step-ms 2 --chaos 1

# The documentation site (mkdocs-material) into build/site; --strict fails on any warning.
docs: $(STAMP)
	$(PY) -m tidegate_dev.reference
	$(PY) -m mkdocs build --strict --quiet

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: $(STAMP) node_modules
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m mkdocs build --strict --quiet
	$(PY) -m pytest

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache node_modules build
