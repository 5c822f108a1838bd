# Community cohesion indicator pipeline. `make help` lists the targets.
# Point a run at another data folder with DATA_DIR=/some/folder (reads raw/, writes processed/).

DATA_DIR ?= data
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COHESION := $(BIN)/cohesion
WHERE := --data-dir $(DATA_DIR)
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

.DEFAULT_GOAL := help
.PHONY: bench-psa21 bench-alerts help setup all demo-data ingest validate estimates indicators outputs test bench bench-real bench-regimes bench-national clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'
	@echo "  DATA_DIR=$(DATA_DIR)   (override: make all DATA_DIR=/some/folder)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the test suite also needs the `spark` extra (pyspark; tests/test_spark_equivalence.py), which `make all` does not
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $(SPARK_STAMP)

setup: $(STAMP) ## create .venv and install the pipeline and its dependencies

all: setup demo-data ## set up, generate the demo district if raw/ is empty, and run every built stage
	$(COHESION) outputs $(WHERE)

demo-data: setup ## write the synthetic demo district into an empty $(DATA_DIR)/raw (never over real extracts)
	$(COHESION) demo-data $(WHERE)

ingest: setup ## check and load raw extracts into $(DATA_DIR)/processed/cohesion.duckdb, quarantining bad rows
	$(COHESION) ingest $(WHERE)

validate: setup ## ingest, then batch expectations (great-expectations) and data docs
	$(COHESION) validate $(WHERE)

estimates: setup ## ... then COHDMAP small-area population estimates with margins of error
	$(COHESION) estimates $(WHERE)

indicators: setup ## ... then the indicator stages: PSA 21 from the resident survey, local basket, early warnings (alerts)
	$(COHESION) indicators $(WHERE)

outputs: setup ## every built stage, then publish partner outputs through disclosure control
	$(COHESION) outputs $(WHERE)

test: $(SPARK_STAMP) ## set up (with the spark extra; Spark also needs Java 17+) and run the test suite
	$(BIN)/python -m pytest -n 2 -q --durations=15

bench: setup ## benchmarks: ingest speed, estimate accuracy (results in benchmarks/results/)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/backtest_estimates.py

bench-real: setup ## real back-test of the counts-only estimates against Census 2021 (needs ../shared/data/real/census2021_backtest)
	$(BIN)/python benchmarks/backtest_real.py

SCALE ?= 1
bench-national: setup ## national-scale run (62M-row extracts at SCALE=1; SCALE=0.1 for a tenth): benchmarks/results/national.*
	$(BIN)/python benchmarks/bench_national.py --scale $(SCALE)

bench-regimes: setup ## back-test the estimates on the independent regimes simulator (benchmarks/regimes; results in benchmarks/results/regimes_backtest.md)
	$(BIN)/python benchmarks/backtest_regimes.py --seeds 3

bench-psa21: setup ## PSA 21 weighting and ward interval coverage over demo seeds (results in benchmarks/results/psa21.md)
	$(BIN)/python benchmarks/bench_psa21.py --seeds 2026 301 302 303 304 --scale 0.15 --survey-size 2000 --churn-mix trafford turbulent

bench-alerts: setup ## early-warning false alarms and planted surges over demo seeds (results in benchmarks/results/basket_alerts.md)
	$(BIN)/python benchmarks/bench_basket_alerts.py --seeds 301 302 303 304

clean: ## remove $(DATA_DIR)/processed (raw data is never touched; refused while a run holds the lock)
	$(PYTHON) -m pipeline.clean $(DATA_DIR)
