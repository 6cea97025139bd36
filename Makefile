# The two commands in the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# WORK, PATIENTS and SEED are passed on only when given (make run SEED=7): otherwise the
# CLI's own defaults apply (riskstrat.common.defaults, riskstrat.demo), defined once.
WORK_OPTION = $(if $(WORK),--workdir $(WORK))
# The work folder for the targets that need its name: WORK, else the CLI's default.
WORKDIR = $(or $(WORK),$(shell $(BIN)/python -c \
	"from riskstrat.common.defaults import WORKDIR; print(WORKDIR)" 2>/dev/null))

.PHONY: setup run test test-fast lint docs bench-synth lock clean browser java postgres wheel bento

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "uv>=0.5"
	$(PYTHON) -m uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(PYTHON) -m uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(PYTHON) -m uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

run: setup
	BENTOML_DO_NOT_TRACK=True $(BIN)/riskstrat demo $(WORK_OPTION) \
		$(if $(PATIENTS),--patients $(PATIENTS)) $(if $(SEED),--seed $(SEED))

test: setup browser java postgres wheel docs
	$(BIN)/ruff check .
	BENTOML_DO_NOT_TRACK=True $(BIN)/pytest

# The inner loop: the tests folder without the slow, browser and Spark tests (make test runs
# them all, with the notebooks).
test-fast: setup postgres
	$(BIN)/ruff check .
	BENTOML_DO_NOT_TRACK=True $(BIN)/pytest tests -q -m "not slow and not browser and not spark"

# The installable wheel (one namespace, `riskstrat`), rebuilt from the checkout every time:
# the packaging tests read it and `make bento` packs it.
wheel:
	rm -rf dist build/lib build/bdist*
	$(PYTHON) -m uv build --wheel --quiet --out-dir dist .

bento: setup wheel
	BENTOML_DO_NOT_TRACK=True $(BIN)/bentoml build

# The browser tests drive Debian's chromium (Playwright's own browser download is not used).
# Installed unattended when missing; needs root, as on the CI machines.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --quiet chromium fonts-liberation; }

# The Spark engine and its parity tests need Java 17: Debian's openjdk-17-jre-headless,
# installed unattended when missing, the same way (needs root).
JAVA ?= /usr/bin/java
java:
	@test -x $(JAVA) || { apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --quiet openjdk-17-jre-headless; }

# Shared state on several servers is tested against a real PostgreSQL server, which the tests
# start themselves (tests/postgres.py): Debian's postgresql, installed the same way.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --quiet postgresql; }

# The documentation site (mkdocs.yml, docs/), warnings as errors so a broken link fails;
# built into build/ (ignored by git), nothing fetched from the network. Not --quiet: it would
# hide the warnings that --strict counts.
DOCS_SITE ?= build/site
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-synth: setup
	$(BIN)/riskstrat bench synth --patients 265000 $(if $(SEED),--seed $(SEED)) --out $(WORKDIR)/bench

lock:
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11

clean:
	rm -rf $(WORKDIR) $(VENV)
