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
# # Small-area population estimates
#
# The COHDMAP estimates of the last run (`processed/outputs/population_estimates.csv`, as partners
# receive them: rounded, small list counts suppressed): each LSOA's estimate with its 95% interval
# beside its GP list, how the population changed against the baseline, and how the width of the
# interval follows the area's population turbulence. Charts draw inline in Jupyter.

# %%
import matplotlib.pyplot as plt
import pandas as pd

from pipeline.outputs.analyst import analyst_settings

settings = analyst_settings()
estimates = pd.read_csv(settings.processed_dir / "outputs" / "population_estimates.csv", parse_dates=["reference_date"])
totals = estimates[(estimates.sex == "All") & (estimates.age_band == "All")]
latest = totals[totals.reference_date == totals.reference_date.max()]
latest[latest.area_type == "la"][["area_name", "reference_date", "estimate", "lower_95", "upper_95", "gp_list"]]

# %% [markdown]
# ## LSOAs at the latest date: estimate with its interval, and the GP list

# %%
lsoa = latest[latest.area_type == "lsoa"].sort_values("estimate").reset_index(drop=True)
fig, ax = plt.subplots(figsize=(8, max(3, len(lsoa) * 0.12)))
ax.errorbar(lsoa.estimate, lsoa.index, xerr=[lsoa.estimate - lsoa.lower_95, lsoa.upper_95 - lsoa.estimate],
            fmt="o", ms=3, label="estimate (95% interval)")
ax.scatter(lsoa.gp_list, lsoa.index, marker="x", s=12, label="GP list")
ax.set_yticks([])
ax.set_xlabel("people")
ax.legend()
ax.set_title(f"LSOA populations, {lsoa.reference_date.max():%d %B %Y}")

# %% [markdown]
# ## Population change against the baseline (first extract = 100)

# %%
areas = totals[totals.area_type.isin(["la", "ward"])].copy()
first = areas.sort_values("reference_date").groupby("area_code").estimate.first()
areas["index"] = areas.estimate / areas.area_code.map(first) * 100
ax = areas.pivot(index="reference_date", columns="area_name", values="index").plot(figsize=(8, 4))
ax.axhline(100, color="grey", linestyle="--")
ax.set_ylabel("first extract = 100")
plt.show()

# %% [markdown]
# ## Interval width against turbulence
# Margins are set by turbulence: settled areas get narrow intervals, churning ones wide.

# %%
lsoa = lsoa.assign(relative_width=(lsoa.upper_95 - lsoa.lower_95) / lsoa.estimate)
ax = lsoa.plot.scatter(x="turbulence", y="relative_width")
ax.set_xlabel("turbulence score")
ax.set_ylabel("width of 95% interval / estimate")
lsoa[["turbulence", "relative_width"]].corr()
