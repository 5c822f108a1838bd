# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Survey results, the local basket and alerts
#
# The indicators of the last run as partners receive them (`processed/outputs/indicators.csv`,
# `alerts.csv`): the PSA 21 survey results with their 95% intervals (how uncertain a ward's figure
# is), the objective basket against the local authority, and the early warnings. When the run
# built no indicator tables the files hold headers only and this notebook says so.

# %%
import duckdb
import matplotlib.pyplot as plt
import pandas as pd

from pipeline.outputs.analyst import analyst_settings
from pipeline.stats.compare import judge_significance

settings = analyst_settings()
outputs = settings.processed_dir / "outputs"
indicators = pd.read_csv(outputs / "indicators.csv", parse_dates=["period_start", "period_end"])
alerts = pd.read_csv(outputs / "alerts.csv")
print(f"{len(indicators):,} indicator rows, {indicators.indicator_id.nunique()} indicators, {len(alerts)} alerts")

# %% [markdown]
# ## Which indicators, where and when

# %%
if len(indicators):
    summary = indicators.groupby(["domain", "indicator_id", "area_type"]).agg(
        rows=("value", "size"), published=("value", "count"), periods=("period_end", "nunique")).reset_index()
else:
    summary = "no indicator tables in this run (indicators.csv has its header only)"
summary

# %% [markdown]
# ## PSA 21: the latest values by ward, with their uncertainty
# Wide intervals are small samples; `similar` means the LA value lies inside the ward's interval.

# %%
psa = indicators[(indicators.domain == "PSA 21") & (indicators.breakdown == "All")]
if len(psa):
    latest = psa[psa.period_end == psa.groupby("indicator_id").period_end.transform("max")]
    for indicator_id, group in latest[latest.area_type == "ward"].groupby("indicator_id"):
        group = group.sort_values("value")
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(group) + 1.5))
        ax.errorbar(group.value, group.area_name, xerr=[group.value - group.lower_95, group.upper_95 - group.value],
                    fmt="o", capsize=3)
        ax.axvline(group.comparator_value.dropna().iloc[0] if group.comparator_value.notna().any() else float("nan"),
                   linestyle="--", color="grey")
        ax.set_title(indicator_id)
        plt.show()
    table = latest[["indicator_id", "area_name", "value", "lower_95", "upper_95", "significance", "note"]]
else:
    table = "no PSA 21 indicators in this run"
table

# %% [markdown]
# ## The basket against the LA: better, similar or worse (by polarity)

# %%
basket = indicators[(indicators.domain != "PSA 21") & (indicators.breakdown == "All") & (indicators.area_type == "ward")]
if len(basket):
    basket = basket.assign(judgement=judge_significance(basket.significance, basket.polarity).to_numpy())
    judged = basket.pivot_table(index="area_name", columns="judgement", values="value", aggfunc="count", fill_value=0)
else:
    judged = "no basket indicators in this run"
judged

# %% [markdown]
# ## Alerts: what moved beyond what its own history makes plausible

# %%
alerts if len(alerts) else "no alerts: nothing moved beyond its plausible range"

# %% [markdown]
# ## Straight from the DuckDB store
# Analysts with access to `processed/cohesion.duckdb` see the unrounded tables; what leaves for
# partners is only what `processed/outputs/` holds.

# %%
with duckdb.connect(str(settings.processed_dir / "cohesion.duckdb"), read_only=True) as con:
    tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%indicators' "
                         "OR table_name = 'alerts' ORDER BY table_name").df()
tables
