"""The main job end to end on a small demo district, and the analysts' notebooks on its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_demo_district_loads_with_an_empty_quarantine(demo_run):
    settings, summary = demo_run
    report = json.loads((summary.processed_dir / "run_report.json").read_text())
    assert report["status"] == "succeeded"
    assert report["totals"]["rows_quarantined"] == 0, [f for f in report["files"] if f["rows_quarantined"]]
    assert report["totals"]["rows_read"] == report["totals"]["rows_loaded"] > 10_000
    assert report["expectations"]["failed"] == []
    assert (summary.processed_dir / "data_docs" / "index.html").exists()
    assert json.loads((summary.processed_dir / "config_used.json").read_text())["demo"]["n_lsoas"] == 12
    assert list((summary.processed_dir / "logs").glob("run-*.log"))


def test_population_estimates_follow_the_contract(demo_run):
    settings, summary = demo_run
    est = pd.read_csv(summary.processed_dir / "outputs" / "population_estimates.csv", dtype={"note": str})
    contract = ["area_code", "area_name", "area_type", "reference_date", "sex", "age_band", "estimate", "lower_95",
                "upper_95", "gp_list", "base_population", "turbulence", "method"]
    assert list(est.columns[: len(contract)]) == contract
    assert set(est.area_type) == {"lsoa", "msoa", "ward", "la"}
    totals = est[(est.sex == "All") & (est.age_band == "All")]
    dates = est.reference_date.unique()
    assert len(dates) == 5
    assert len(totals) == est.area_code.nunique() * len(dates)  # every area at every date
    assert (totals.lower_95 <= totals.estimate).all() and (totals.estimate <= totals.upper_95).all()
    assert est.note.str.contains("SYNTHETIC").all()  # outputs made from demo data say so


def test_notebooks_run_on_the_results(demo_run):
    settings, _ = demo_run
    env = dict(os.environ, COHESION_DATA_DIR=str(settings.data_dir))
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:xdist", "notebooks"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
