# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Data quality of the last run
#
# What was loaded, what was not, and why: the run report, the quarantine and the batch
# expectations of the last successful run in `<DATA_DIR>/processed/`. The data folder is the
# project's `data/` (read from config.toml, relative to the project root, wherever Jupyter was
# started); set the environment variable `COHESION_DATA_DIR` to look at another data folder.

# %%
import json

import duckdb
import pandas as pd

from pipeline.outputs.analyst import analyst_settings

settings = analyst_settings()
processed = settings.processed_dir
report = json.loads((processed / "run_report.json").read_text())
print(f"run {report['run_id']} ({report['status']}), code {report['code_version']}, stages: {', '.join(report['stages'])}")

# %% [markdown]
# ## Every file: rows read = loaded + quarantined

# %%
files = pd.DataFrame(report["files"])[["source", "file", "layout", "rows_read", "rows_loaded", "rows_quarantined", "skipped"]]
assert (files.rows_read == files.rows_loaded + files.rows_quarantined).all()
files

# %% [markdown]
# ## Quarantined rows by source and rule

# %%
frames = [pd.read_csv(p, dtype=str).assign(source=p.stem) for p in sorted((processed / "quarantine").glob("*.csv"))]
quarantine = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["source", "rule"])
quarantine.groupby(["source", "rule"]).size().rename("rows").reset_index() if len(quarantine) else "nothing quarantined"

# %% [markdown]
# ## Batch expectations that failed

# %%
failed = pd.DataFrame(report.get("expectations", {}).get("failed", []))
failed if len(failed) else f"all {report.get('expectations', {}).get('evaluated', 0)} expectation results passed"

# %% [markdown]
# ## Registered patients by extract date and local authority

# %%
with duckdb.connect(str(processed / "cohesion.duckdb"), read_only=True) as con:
    lists = con.execute("""SELECT extract_date, la_code, count(*) AS patients,
                                  avg(CASE WHEN from_abroad THEN 1 ELSE 0 END) AS share_from_abroad
                           FROM gp_register GROUP BY extract_date, la_code ORDER BY extract_date, la_code""").df()
lists
