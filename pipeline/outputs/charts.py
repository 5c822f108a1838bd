"""Charts partners receive: matplotlib in the Analysis Function style (the ``afcharts`` style sheet
and palettes), drawn only from frames that passed disclosure control.

Every chart: a title that states the finding, a source and date footer, alt text (kept beside the
PNG in ``charts/index.csv`` and used by the report), colours that stay readable with colour-blind
vision (Analysis Function blue/orange with distinct marker shapes, so meaning never rests on colour
alone) and, on demo data, a "SYNTHETIC" watermark. Fingertips' better / similar / worse reading
comes from `pipeline.stats.compare.judge_significance` (polarity-aware).

Charts for indicators are drawn only when their rows exist; without indicator tables the pack
still has the population charts.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from pipeline.outputs.disclosure import require_protected
from pipeline.stats.compare import judge_significance
from schemas.vocabulary import AGE_BANDS

log = logging.getLogger(__name__)

STYLE = ["afcharts.afcharts", {"font.size": 10, "legend.fontsize": 9, "axes.titlesize": 11}]
AF_BLUE, AF_TEAL, AF_PURPLE, AF_ORANGE, AF_GREY, AF_LILAC = "#12436D", "#28A197", "#801650", "#F46A25", "#3D3D3D", "#A285D1"
SEQUENTIAL = ["#ADD1F1", "#6BACE6", "#2073BC", "#12436D", "#092135"]  # afcharts sequential (light -> dark)
# Fingertips' better / similar / worse, in colour-blind-safe Analysis Function colours, with shapes
JUDGEMENT_STYLE = {
    "better": (AF_BLUE, "^", "better than the LA"),
    "similar": ("#BFBFBF", "o", "similar to the LA"),
    "worse": (AF_ORANGE, "v", "worse than the LA"),
    "not judged": (AF_LILAC, "s", "different (no judgement)"),
    "not compared": ("#FFFFFF", "o", "not compared"),
}
PSA21 = "PSA 21"
SEGREGATION_WORDS = ("dissimilarity", "isolation", "exposure", "segregation", "entropy")
RANDOM_COLUMNS = ("expected_random", "random_expected", "random_allocation", "expected_value")


@dataclass
class Chart:
    file: str  # relative to the pack folder, e.g. charts/population_by_ward.png
    title: str
    alt: str
    section: str
    ward: str = ""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")[:60]


class ChartWriter:
    """Draws figures in the house style and saves them with footer, watermark and alt text.

    Figures are `matplotlib.figure.Figure` objects saved straight to PNG, never pyplot's, so drawing
    them neither needs nor changes the session's backend (notebooks keep their interactive one).
    """

    def __init__(self, folder: Path, synthetic: bool, run_id: str):
        self.folder = folder
        self.synthetic = synthetic
        self.run_id = run_id
        self.charts: list[Chart] = []
        folder.mkdir(parents=True, exist_ok=True)

    def figure(self, width: float = 9, height: float = 5.5) -> Figure:
        with matplotlib.style.context(STYLE):
            fig = Figure(figsize=(width, height), dpi=100)
        return fig

    def save(self, fig: Figure, name: str, title: str, alt: str, section: str, source: str, ward: str = "") -> Chart:
        fig.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold", wrap=True)
        footer = f"Source: {source}. Run {self.run_id}; produced {dt.date.today():%d %B %Y}."
        if self.synthetic:
            footer = "SYNTHETIC DEMO DATA - no real person. " + footer
        fig.text(0.01, 0.005, footer, fontsize=8, color=AF_GREY, ha="left", va="bottom", wrap=True)
        if self.synthetic:
            fig.text(0.5, 0.5, "SYNTHETIC", fontsize=64, color="#BFBFBF", alpha=0.35, ha="center", va="center",
                     rotation=25, zorder=0)
        fig.subplots_adjust(top=0.86, bottom=0.2)
        path = self.folder / f"{name}.png"
        fig.savefig(path, dpi=100)
        chart = Chart(f"{self.folder.name}/{path.name}", title,
                      ("Synthetic demo data. " if self.synthetic else "") + alt, section, ward)
        self.charts.append(chart)
        return chart


def _styled(function):
    def wrapper(*args, **kwargs):
        with matplotlib.style.context(STYLE):
            try:
                return function(*args, **kwargs)
            except Exception:  # noqa: BLE001 - one chart failing must not lose the pack; the log says which
                log.exception("chart %s could not be drawn", function.__name__)
                return None
    wrapper.__name__ = function.__name__
    return wrapper


def draw_charts(tables, folder: Path) -> list[Chart]:
    """Every chart the run's protected tables support; returns them (also listed in charts/index.csv)."""
    for frame, name in ((tables.population, "population"), (tables.indicators, "indicators")):
        require_protected(frame, f"the chart writer ({name})")
    writer = ChartWriter(folder, tables.synthetic, tables.run.get("run_id", ""))
    pop = tables.population
    if len(pop):
        chart_population_by_ward(writer, pop)
        chart_population_trend(writer, pop)
        for area_code in [*pop.loc[pop.area_type == "la", "area_code"].unique(),
                          *sorted(pop.loc[pop.area_type == "ward", "area_code"].unique())]:
            chart_pyramid(writer, pop, area_code)
        chart_turbulence(writer, pop)
    ind = tables.indicators
    if len(ind):
        ind = ind.assign(judgement=judge_significance(ind["significance"], ind["polarity"]).to_numpy())
        for indicator_id in sorted(ind.loc[ind.domain == PSA21, "indicator_id"].unique()):
            chart_indicator_by_ward(writer, ind, indicator_id)
        for indicator_id in sorted(ind["indicator_id"].unique()):
            chart_trend(writer, ind, indicator_id)
            chart_funnel(writer, ind, indicator_id)
        for ward in sorted(ind.loc[ind.area_type == "ward", "area_code"].unique()):
            chart_spine(writer, ind, ward)
        chart_segregation(writer, ind)
    if len(tables.postcodes):
        from pipeline.outputs.maps import draw_maps

        draw_maps(writer, tables)
    pd.DataFrame([asdict(c) for c in writer.charts]).to_csv(folder / "index.csv", index=False)
    return writer.charts


def _latest(frame: pd.DataFrame, date_column: str) -> pd.DataFrame:
    return frame[frame[date_column] == frame[date_column].max()]


def _totals(pop: pd.DataFrame) -> pd.DataFrame:
    return pop[(pop.sex == "All") & (pop.age_band == "All")]


ESTIMATE_SOURCE = "COHDMAP estimates from GP registers and ONS mid-year estimates"


@_styled
def chart_population_by_ward(w: ChartWriter, pop: pd.DataFrame):
    wards = _latest(_totals(pop[pop.area_type == "ward"]), "reference_date").sort_values("estimate")
    if wards.empty:
        return None
    date = pd.Timestamp(wards.reference_date.iloc[0])
    fig = w.figure(9, max(4.5, 1.2 + 0.35 * len(wards)))
    ax = fig.add_subplot()
    y = np.arange(len(wards))
    ax.errorbar(wards.estimate, y, xerr=[wards.estimate - wards.lower_95, wards.upper_95 - wards.estimate],
                fmt="o", color=AF_BLUE, ecolor=AF_BLUE, capsize=3, label="estimate with 95% margin")
    ax.scatter(wards.gp_list, y, marker="x", color=AF_ORANGE, label="GP list (registered patients)", zorder=3)
    ax.set_yticks(y, wards.area_name)
    ax.set_xlabel("people")
    ax.grid(axis="x")
    ax.legend(loc="lower right")
    rel = ((wards.upper_95 - wards.lower_95) / 2 / wards.estimate).replace([np.inf], np.nan)
    widest = wards.loc[rel.idxmax()] if rel.notna().any() else wards.iloc[-1]
    title = (f"Ward populations on {date:%d %b %Y}: margins run from ±{rel.min():.0%} to ±{rel.max():.0%}, "
             f"widest in {widest.area_name}")
    alt = (f"Dot plot of the estimated population of each of {len(wards)} wards on {date:%d %B %Y}, with 95% margins "
           f"and GP list sizes. Largest: {wards.iloc[-1].area_name} ({wards.iloc[-1].estimate:,.0f}); smallest: "
           f"{wards.iloc[0].area_name} ({wards.iloc[0].estimate:,.0f}).")
    return w.save(fig, "population_by_ward", title, alt, "Population", ESTIMATE_SOURCE)


@_styled
def chart_population_trend(w: ChartWriter, pop: pd.DataFrame):
    totals = _totals(pop[pop.area_type.isin(["la", "ward"])]).copy()
    if totals.reference_date.nunique() < 2:
        return None
    first = totals.sort_values("reference_date").groupby("area_code").first()
    totals["index"] = totals.estimate / totals.area_code.map(first.estimate) * 100
    fig = w.figure(9, 5.5)
    ax = fig.add_subplot()
    for code, group in totals[totals.area_type == "ward"].groupby("area_code"):
        ax.plot(group.reference_date, group["index"], color="#BFBFBF", linewidth=1)
    la = totals[totals.area_type == "la"].sort_values("reference_date")
    ax.plot(la.reference_date, la["index"], color=AF_BLUE, linewidth=3, label=f"{la.area_name.iloc[0]} (LA)")
    ax.axhline(100, color=AF_GREY, linestyle="--", linewidth=1, label="baseline (first extract) = 100")
    last = totals[totals.reference_date == totals.reference_date.max()]
    wards = last[last.area_type == "ward"]
    top = wards.loc[wards["index"].idxmax()] if len(wards) else la.iloc[-1]
    ax.set_ylabel("population, first extract = 100")
    ax.legend()
    change = la["index"].iloc[-1] - 100
    title = (f"{la.area_name.iloc[0]}'s population {'grew' if change >= 0 else 'fell'} {abs(change):.1f}% since the "
             f"baseline; fastest change in {top.area_name}")
    alt = (f"Line chart of each ward's estimated population indexed to the first extract (grey) and the LA (blue), "
           f"{la.reference_date.min():%B %Y} to {la.reference_date.max():%B %Y}. {top.area_name} changed most "
           f"({top['index'] - 100:+.1f}%).")
    return w.save(fig, "population_trend", title, alt, "Population", ESTIMATE_SOURCE)


BAND_ORDER = list(AGE_BANDS)


@_styled
def chart_pyramid(w: ChartWriter, pop: pd.DataFrame, area_code: str):
    area = pop[(pop.area_code == area_code) & pop.sex.isin(["M", "F"]) & pop.age_band.isin(BAND_ORDER)]
    latest = _latest(area, "reference_date")
    if latest.empty:
        return None
    name = latest.area_name.iloc[0]
    date = pd.Timestamp(latest.reference_date.iloc[0])
    fig = w.figure(8, 6.5)
    ax = fig.add_subplot()
    y = np.arange(len(BAND_ORDER))
    for sex, sign, colour in (("M", -1, AF_BLUE), ("F", 1, AF_TEAL)):
        cut = latest[latest.sex == sex].set_index("age_band").reindex(BAND_ORDER)
        ax.barh(y, sign * cut.estimate, color=colour, height=0.85, label={"M": "males", "F": "females"}[sex])
        ax.step(sign * cut.base_population.to_numpy(), y, where="mid", color=AF_ORANGE, linewidth=1.5,
                label="base population" if sex == "M" else None)
    ax.set_yticks(y, BAND_ORDER)
    ticks = ax.get_xticks()
    ax.set_xticks(ticks, [f"{abs(t):,.0f}" for t in ticks])
    ax.set_xlabel("people (males left, females right)")
    ax.grid(axis="x")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    totals = latest.groupby("age_band")[["estimate", "base_population"]].sum().reindex(BAND_ORDER)
    diff = (totals.estimate - totals.base_population)
    band = diff.abs().idxmax()
    title = (f"{name}: the {band} age band moved most from the base ({diff[band]:+,.0f} people), "
             f"{date:%b %Y}")
    alt = (f"Population pyramid of {name} on {date:%d %B %Y}: estimated males (left) and females (right) by 5-year age "
           f"band, with the base population as an orange outline. The largest change from the base is in the {band} "
           f"band ({diff[band]:+,.0f}).")
    kind = "la" if (latest.area_type == "la").any() else "ward"
    return w.save(fig, f"pyramid_{kind}_{slug(area_code)}", title, alt, "Population", ESTIMATE_SOURCE,
                  ward=area_code if kind == "ward" else "")


@_styled
def chart_turbulence(w: ChartWriter, pop: pd.DataFrame):
    areas = _latest(_totals(pop[pop.area_type == "lsoa"]), "reference_date").dropna(subset=["turbulence"])
    if areas.empty:
        return None
    areas = areas.sort_values("turbulence").tail(25)
    fig = w.figure(9, max(4.5, 1.2 + 0.28 * len(areas)))
    ax = fig.add_subplot()
    median = areas.turbulence.median()
    colours = [AF_ORANGE if t > median else AF_BLUE for t in areas.turbulence]
    ax.barh(np.arange(len(areas)), areas.turbulence, color=colours)
    ax.set_yticks(np.arange(len(areas)), [f"{n} ({c})" for n, c in zip(areas.area_name, areas.area_code)])
    ax.set_xlabel("turbulence: moves per 1,000 residents a year")
    ax.grid(axis="x")
    top = areas.iloc[-1]
    title = f"Turbulence is highest in {top.area_name} ({top.turbulence:,.0f} moves per 1,000 a year)"
    alt = (f"Bar chart of population turbulence for the {len(areas)} most turbulent LSOAs. Highest: {top.area_name} "
           f"{top.area_code} at {top.turbulence:,.0f}; the chart's median is {median:,.0f}.")
    return w.save(fig, "turbulence", title, alt, "Population", "GP registers, school census, asylum allocations")


def _indicator_rows(ind: pd.DataFrame, indicator_id: str) -> pd.DataFrame:
    rows = ind[(ind.indicator_id == indicator_id) & (ind.breakdown.fillna("All") == "All")]
    return rows


def _meta(rows: pd.DataFrame) -> tuple[str, str, str]:
    first = rows.iloc[0]
    return str(first.indicator_name), str(first.unit), str(first.polarity)


@_styled
def chart_indicator_by_ward(w: ChartWriter, ind: pd.DataFrame, indicator_id: str):
    rows = _indicator_rows(ind, indicator_id)
    latest = _latest(rows, "period_end")
    wards = latest[latest.area_type == "ward"].dropna(subset=["value"]).sort_values("value")
    hidden = sorted(latest.loc[(latest.area_type == "ward") & latest.value.isna(), "area_name"].astype(str))
    la = latest[latest.area_type == "la"]
    if wards.empty:
        return None
    name, unit, polarity = _meta(rows)
    fig = w.figure(9, max(4.5, 1.4 + 0.35 * len(wards)))
    ax = fig.add_subplot()
    y = np.arange(len(wards))
    for judgement, (colour, marker, label) in JUDGEMENT_STYLE.items():
        sel = (wards.judgement == judgement).to_numpy()
        if sel.any():
            part = wards[sel]
            ax.errorbar(part.value, y[sel], xerr=[part.value - part.lower_95, part.upper_95 - part.value], fmt=marker,
                        color=colour, ecolor=AF_GREY, markeredgecolor=AF_GREY, capsize=3, markersize=9, label=label)
    if len(la) and pd.notna(la.value.iloc[0]):
        ax.axvline(la.value.iloc[0], color=AF_GREY, linestyle="--", label=f"{la.area_name.iloc[0]} (LA) {la.value.iloc[0]:.1f}{unit if unit == '%' else ''}")
    elif wards.comparator_value.notna().any():  # e.g. model-based ward estimates compared with the LA's direct value
        ref = float(pd.to_numeric(wards.comparator_value, errors="coerce").dropna().iloc[0])
        ax.axvline(ref, color=AF_GREY, linestyle="--", label=f"{wards.comparator.dropna().astype(str).iloc[0]} {ref:.1f}")
    ax.set_yticks(y, wards.area_name)
    ax.set_xlabel(f"{unit} (95% confidence interval)")
    ax.grid(axis="x")
    ax.legend(loc="lower right", fontsize=9)
    worse = wards[wards.judgement == "worse"]
    better = wards[wards.judgement == "better"]
    period = pd.Timestamp(latest.period_end.iloc[0])
    finding = (f"{len(worse)} ward(s) significantly worse than the LA" if len(worse) else
               f"no ward significantly worse than the LA") + (f", {len(better)} better" if len(better) else "")
    title = f"{name}: {finding} ({period:%b %Y})"
    not_shown = f"Not shown (suppressed: too few people or respondents): {', '.join(hidden)}." if hidden else ""
    if hidden:
        fig.text(0.01, 0.06, not_shown, fontsize=9, color=AF_GREY, ha="left", wrap=True)
    alt = (f"Dot plot of '{name}' ({unit}) for {len(wards)} wards with 95% confidence intervals and the LA value as a "
           f"dashed line. Highest: {wards.iloc[-1].area_name} {wards.iloc[-1].value:.1f}; lowest: "
           f"{wards.iloc[0].area_name} {wards.iloc[0].value:.1f}. {finding.capitalize()}. {not_shown}").strip()
    return w.save(fig, f"indicator_{slug(indicator_id)}_by_ward", title, alt, "Indicators", "Local resident survey")


@_styled
def chart_trend(w: ChartWriter, ind: pd.DataFrame, indicator_id: str):
    rows = _indicator_rows(ind, indicator_id)
    la = rows[rows.area_type == "la"].dropna(subset=["value"]).sort_values("period_end")
    if rows.empty or la.period_end.nunique() < 2:
        return None
    name, unit, polarity = _meta(rows)
    fig = w.figure(9, 5.5)
    ax = fig.add_subplot()
    for code, group in rows[rows.area_type == "ward"].dropna(subset=["value"]).groupby("area_code"):
        ax.plot(group.period_end, group.value, color="#BFBFBF", linewidth=1)
    ax.plot(la.period_end, la.value, color=AF_BLUE, linewidth=3, marker="o", label=f"{la.area_name.iloc[0]} (LA)")
    if la.lower_95.notna().any():
        ax.fill_between(la.period_end, la.lower_95.astype(float), la.upper_95.astype(float), color=AF_BLUE, alpha=0.15,
                        label="95% interval")
    baseline = la.value.iloc[0]
    ax.axhline(baseline, color=AF_ORANGE, linestyle="--", linewidth=1.5,
               label=f"baseline ({pd.Timestamp(la.period_end.iloc[0]):%b %Y})")
    ax.set_ylabel(unit)
    ax.legend(fontsize=9)
    change = la.value.iloc[-1] - baseline
    title = f"{name}: {'up' if change >= 0 else 'down'} {abs(change):.1f} {unit} on the baseline in {la.area_name.iloc[0]}"
    alt = (f"Line chart of '{name}' ({unit}) by period for the LA (blue) and each ward (grey), with the baseline "
           f"period's LA value as a dashed line. Latest LA value {la.value.iloc[-1]:.1f} against a baseline of "
           f"{baseline:.1f}.")
    return w.save(fig, f"trend_{slug(indicator_id)}", title, alt, "Trends", "Pipeline indicators")


def funnel_limits(target: float, denominators: np.ndarray, unit: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Control limits around `target` for each denominator: exact binomial quantiles for a %,
    Poisson for a rate per 1,000 (Spiegelhalter's funnel plot, no overdispersion)."""
    n = np.asarray(denominators, dtype=float)
    tail = (1 - level) / 2
    if unit == "%":
        p = np.clip(target / 100, 1e-9, 1 - 1e-9)
        lo, hi = stats.binom.ppf(tail, n, p), stats.binom.ppf(1 - tail, n, p)
        return lo / n * 100, hi / n * 100
    scale = 1000.0 if "1,000" in unit else (100_000.0 if "100,000" in unit else 1.0)
    mu = target / scale * n
    lo, hi = stats.poisson.ppf(tail, mu), stats.poisson.ppf(1 - tail, mu)
    return lo / n * scale, hi / n * scale


@_styled
def chart_funnel(w: ChartWriter, ind: pd.DataFrame, indicator_id: str):
    rows = _indicator_rows(ind, indicator_id)
    if rows.empty:
        return None
    latest = _latest(rows, "period_end")
    wards = latest[latest.area_type == "ward"].dropna(subset=["value", "denominator"])
    la = latest[latest.area_type == "la"].dropna(subset=["value"])
    name, unit, polarity = _meta(rows)
    if len(wards) < 3 or la.empty or (unit != "%" and "per" not in unit):
        log.info("no funnel plot for %s: %d wards with values, unit %s", indicator_id, len(wards), unit)
        return None
    target = float(la.value.iloc[0])
    den = wards.denominator.astype(float).to_numpy()
    grid = np.linspace(max(1.0, den.min() * 0.8), den.max() * 1.2, 200)
    fig = w.figure(9, 5.5)
    ax = fig.add_subplot()
    for level, style in ((0.95, "--"), (0.998, ":")):
        lo, hi = funnel_limits(target, grid, unit, level)
        ax.plot(grid, lo, color=AF_GREY, linestyle=style, linewidth=1, label=f"{level:.1%} limits".replace(".0%", "%"))
        ax.plot(grid, hi, color=AF_GREY, linestyle=style, linewidth=1)
    ax.axhline(target, color=AF_BLUE, linewidth=1.5, label=f"LA value {target:.1f}")
    lo, hi = funnel_limits(target, den, unit, 0.998)
    outside = (wards.value.to_numpy() < lo) | (wards.value.to_numpy() > hi)
    ax.scatter(den[~outside], wards.value[~outside], color=AF_BLUE, marker="o", s=40, label="ward within 99.8% limits", zorder=3)
    ax.scatter(den[outside], wards.value[outside], color=AF_ORANGE, marker="D", s=55, label="ward outside 99.8% limits", zorder=3)
    for d, v, n in zip(den[outside], wards.value[outside], wards.area_name[outside]):
        ax.annotate(n, (d, v), textcoords="offset points", xytext=(5, 5), fontsize=9)
    ax.set_xlabel("denominator (size of the ward's base)")
    ax.set_ylabel(unit)
    ax.legend(fontsize=9)
    title = f"{name}: {int(outside.sum())} ward(s) outside the 99.8% funnel limits around the LA"
    alt = (f"Funnel plot of '{name}' for {len(wards)} wards against the size of their base, with 95% and 99.8% control "
           f"limits around the LA value {target:.1f}. {int(outside.sum())} ward(s) fall outside the 99.8% limits.")
    return w.save(fig, f"funnel_{slug(indicator_id)}", title, alt, "Comparisons", "Pipeline indicators")


@_styled
def chart_spine(w: ChartWriter, ind: pd.DataFrame, ward: str):
    """Fingertips-style spine chart: for each indicator, the range over wards (worst to best by
    polarity), the LA at the centre, the ward's value coloured by its judgement against the LA."""
    rows = ind[(ind.breakdown.fillna("All") == "All") & ind.area_type.isin(["ward", "la"])].dropna(subset=["value"])
    lines = []
    for indicator_id, group in rows.groupby("indicator_id"):
        latest = _latest(group, "period_end")
        wards = latest[latest.area_type == "ward"]
        la = latest[latest.area_type == "la"]
        mine = wards[wards.area_code == ward]
        if la.empty or mine.empty or len(wards) < 2:
            continue
        centre = float(la.value.iloc[0])
        sign = -1.0 if str(mine.polarity.iloc[0]) == "lower is better" else 1.0
        spread = max(abs(wards.value.astype(float) - centre).max(), 1e-9)
        lines.append((str(mine.indicator_name.iloc[0])[:55], sign * (wards.value.astype(float) - centre) / spread,
                      sign * (float(mine.value.iloc[0]) - centre) / spread, str(mine.judgement.iloc[0]),
                      float(mine.value.iloc[0]), centre, str(mine.unit.iloc[0])))
    if not lines:
        return None
    name = str(rows.loc[rows.area_code == ward, "area_name"].iloc[0])
    fig = w.figure(10, max(4, 1.6 + 0.45 * len(lines)))
    ax = fig.add_subplot()
    for y, (label, spread, x, judgement, value, centre, unit) in enumerate(lines):
        q = np.quantile(spread, [0, 0.25, 0.75, 1])
        ax.barh(y, q[3] - q[0], left=q[0], color="#D9D9D9", height=0.6)
        ax.barh(y, q[2] - q[1], left=q[1], color="#A6A6A6", height=0.6)
        colour, marker, _ = JUDGEMENT_STYLE.get(judgement, JUDGEMENT_STYLE["not compared"])
        ax.scatter([x], [y], color=colour, marker=marker, s=90, edgecolors=AF_GREY, zorder=3)
        ax.text(1.08, y, f"{value:.1f} (LA {centre:.1f}) {unit}", va="center", fontsize=9, transform=ax.get_yaxis_transform())
    ax.axvline(0, color="black", linewidth=1.5)
    ax.set_yticks(range(len(lines)), [line[0] for line in lines], fontsize=9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_xticks([-1, 0, 1], ["worst ward", "LA", "best ward"])
    ax.grid(False)
    handles = [matplotlib.lines.Line2D([], [], color=c, marker=m, linestyle="", markeredgecolor=AF_GREY, markersize=9,
                                       label=l) for c, m, l in list(JUDGEMENT_STYLE.values())[:4]]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=9)
    fig.subplots_adjust(left=0.35, right=0.78)
    worse = sum(1 for line in lines if line[3] == "worse")
    better = sum(1 for line in lines if line[3] == "better")
    title = f"{name}: {worse} indicator(s) worse than the LA, {better} better, of {len(lines)}"
    alt = (f"Spine chart for {name}: for each of {len(lines)} indicators, the range across wards (grey bars, worst to "
           f"best), the LA at the centre line and the ward's value as a marker: "
           + "; ".join(f"{l[0]} {l[4]:.1f} ({l[3]})" for l in lines) + ".")
    return w.save(fig, f"spine_{slug(ward)}", title, alt, "Ward profiles", "Pipeline indicators", ward=ward)


@_styled
def chart_segregation(w: ChartWriter, ind: pd.DataFrame):
    seg = ind[ind.indicator_id.str.contains("|".join(SEGREGATION_WORDS), case=False)
              | ind.domain.fillna("").str.contains("segregation", case=False)]
    seg = seg[seg.area_type == "la"].dropna(subset=["value"])
    if seg.empty:
        return None
    seg = _latest(seg, "period_end")
    random_col = next((c for c in RANDOM_COLUMNS if c in seg.columns), None)
    if random_col:
        expected = pd.to_numeric(seg[random_col], errors="coerce")
    else:
        expected = pd.to_numeric(seg.comparator_value, errors="coerce").where(
            seg.comparator.fillna("").str.contains("random", case=False))
    labels = [f"{n} - {b}" for n, b in zip(seg.indicator_name, seg.breakdown.fillna("All"))]
    fig = w.figure(10, max(4, 1.6 + 0.4 * len(seg)))
    ax = fig.add_subplot()
    y = np.arange(len(seg))
    ax.barh(y, seg.value.astype(float), color=AF_BLUE, height=0.6, label="observed")
    if expected.notna().any():
        ax.scatter(expected, y, color=AF_ORANGE, marker="D", s=50, zorder=3, label="expected under random allocation")
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel("index (0 = even, 1 = complete separation)")
    ax.grid(axis="x")
    ax.legend(loc="lower right", fontsize=9)
    fig.subplots_adjust(left=0.4)
    excess = (seg.value.astype(float) - expected.fillna(0)).to_numpy()
    top = int(np.nanargmax(excess))
    title = f"Segregation is highest, beyond chance, for {labels[top]} ({seg.value.iloc[top]:.2f})"
    alt = (f"Bar chart of {len(seg)} segregation indices for the LA with, where known, the value expected if pupils or "
           f"residents were allocated at random (orange diamonds). Highest excess over chance: {labels[top]}.")
    return w.save(fig, "segregation", title, alt, "Segregation", "School census / population estimates")
