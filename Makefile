# The two commands: `make run` (set-up + the whole pipeline on the demo) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
DEMO_CUSTOMERS ?= 20000
DEMO_DAYS ?= 730
DEMO_SEED ?= 42
# Dagster instance storage: `sqlite` (default, files under .dagster_home) or `postgres`
# (deploy/dagster-postgres.yaml; DAGSTER_PG_HOST, _PORT, _USER, _PASSWORD, _DB from the env).
INSTANCE ?= sqlite
ifeq ($(INSTANCE),postgres)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home/postgres
else ifeq ($(INSTANCE),sqlite)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
else
$(error INSTANCE must be sqlite or postgres, not $(INSTANCE))
endif
export LIFECYCLE_LANDING_DIR ?= data/landing
# A single-run backfill records one "planned" event per asset instead of one per partition
# (SQLite instance storage pays ~15 ms per event: 3 650 events for two years of 5 sources).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true
UI_PORT ?= 3000
# The warehouse as the pipeline resolves it (absolute): dbt reuses a saved parse only for the
# same profile, so `make setup` parses with the path the nightly's dbt steps use.
WAREHOUSE_ABS = $(abspath $(or $(LIFECYCLE_WAREHOUSE),data/warehouse/lifecycle.duckdb))

.PHONY: help setup uv demo-data run ui test lint check-defs rollback models docs clean

help:
	@echo "make run    set up, generate the demo landing zone, run the whole pipeline"
	@echo "make test   set up and run the test suite"
	@echo "make ui     the Dagster UI on http://127.0.0.1:$(UI_PORT)"

uv:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv \
	  || pip install --quiet uv

# --compile-bytecode: uv writes every package's .pyc once (15 s on the first set-up, then only
# what changed). Python does not write them itself where PYTHONDONTWRITEBYTECODE is set (as on
# CI machines and in the image), and compiling dagster, dbt, scikit-learn and scipy from source
# cost every process ~5 s (each dbt step another ~1 s).
setup: uv
	$(UV) sync --frozen --compile-bytecode
	@mkdir -p $(DAGSTER_HOME)
ifeq ($(INSTANCE),postgres)
	@ln -sf $(CURDIR)/deploy/dagster-postgres.yaml $(DAGSTER_HOME)/dagster.yaml
else
	@cp -n deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
endif
	LIFECYCLE_WAREHOUSE=$(WAREHOUSE_ABS) \
	  $(UV) run dbt parse --quiet --project-dir dbt_project --profiles-dir dbt_project

DEMO_END ?= $(shell date -u -d yesterday +%F)
DEMO_START ?= $(shell date -u -d "$(DEMO_END) - $$(( $(DEMO_DAYS) - 1 )) days" +%F)

# The demo landing zone, generated once (`make clean` to regenerate), and only when the
# landing dir is the default one: with your own LIFECYCLE_LANDING_DIR nothing is simulated.
demo-data: setup
	@if [ "$(LIFECYCLE_LANDING_DIR)" = "data/landing" ] && [ ! -f data/.demo-complete ]; then \
	  echo "Simulating $(DEMO_CUSTOMERS) customers, $(DEMO_START) .. $(DEMO_END) -> data/landing"; \
	  $(UV) run python -m simulator --customers $(DEMO_CUSTOMERS) --start $(DEMO_START) \
	    --end $(DEMO_END) --seed $(DEMO_SEED) --out data/landing --clean >/dev/null \
	  && touch data/.demo-complete; \
	fi

run: demo-data
	$(UV) run python -m orchestration.pipeline

ui: setup
	$(UV) run dg dev --host 127.0.0.1 --port $(UI_PORT)

test: setup
	$(UV) run pytest

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run sqlfluff lint dbt_project/models dbt_project/tests

check-defs: setup
	$(UV) run dg check defs

# Put the previous champion model back (or TO=<version>): scores come from it next run.
KIND ?= churn
rollback: setup
	$(UV) run python -m ml.registry rollback --root $${LIFECYCLE_MODEL_DIR:-data/models} \
	  --kind $(KIND) $(if $(TO),--to $(TO))

models: setup
	$(UV) run python -m ml.registry list --root $${LIFECYCLE_MODEL_DIR:-data/models} --kind $(KIND)

# dbt's documentation site on http://127.0.0.1:8080
docs: setup
	LIFECYCLE_WAREHOUSE=$(WAREHOUSE_ABS) \
	  $(UV) run dbt docs generate --project-dir dbt_project --profiles-dir dbt_project
	LIFECYCLE_WAREHOUSE=$(WAREHOUSE_ABS) \
	  $(UV) run dbt docs serve --project-dir dbt_project --profiles-dir dbt_project \
	  --host 127.0.0.1 --port 8080 --no-browser

clean:
	rm -rf data .dagster_home dbt_project/target
