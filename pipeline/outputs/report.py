"""The partner report: one self-contained HTML file per run.

Charts are embedded as data URIs, the styles are inline and nothing is fetched from the internet,
so the file opens offline, can be emailed as it is, and prints cleanly (print styles keep each
chart whole on a page). It bundles the key findings per ward in plain English, the charts with
their alt text, the tables, the alerts and the methods notes, and links the CSV files beside it.
Its figures come only from the protected frames (`require_protected`).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from pipeline.outputs.charts import Chart
from pipeline.outputs.disclosure import require_protected
from pipeline.stats.compare import judge_significance

CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#0b0c0c;max-width:1100px;margin:0 auto;padding:0 1.2em 3em;line-height:1.45}
h1{font-size:2em;margin-top:.6em} h2{border-bottom:3px solid #12436D;padding-bottom:.2em;margin-top:2em} h3{margin-top:1.4em}
.banner{background:#F46A25;color:#000;font-weight:bold;padding:.7em 1em;margin:1em 0;border:3px solid #3D3D3D}
.meta{color:#3D3D3D;font-size:.9em}
figure{margin:1.2em 0;page-break-inside:avoid;break-inside:avoid}
figure img{max-width:100%;height:auto;border:1px solid #D9D9D9}
figcaption{font-size:.9em;color:#3D3D3D}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em;page-break-inside:auto}
th,td{border:1px solid #BFBFBF;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#F2F2F2} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr{page-break-inside:avoid;break-inside:avoid}
nav ul{columns:2} .finding{margin:.3em 0}
a{color:#12436D}
@media print{body{max-width:none;font-size:10.5pt} nav{display:none} h2{page-break-before:always;break-before:page}
 h2.first{page-break-before:avoid;break-before:avoid} a{color:#000;text-decoration:none}}
"""


def _esc(value) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value))


def _table(frame: pd.DataFrame, columns: list[str], caption: str, max_rows: int = 200) -> str:
    if frame.empty:
        return f"<p>{_esc(caption)}: none in this run.</p>"
    shown = frame[columns].head(max_rows)
    head = "".join(f"<th scope='col'>{_esc(c)}</th>" for c in columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                text = "" if pd.isna(value) else f"{value:,.1f}" if abs(value) < 1000 and value != int(value) else f"{value:,.0f}"
                cells.append(f"<td class='num'>{text}</td>")
            elif isinstance(value, pd.Timestamp):
                cells.append(f"<td>{value:%Y-%m-%d}</td>")
            else:
                cells.append(f"<td>{_esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='meta'>First {max_rows:,} of {len(frame):,} rows; the CSV holds them all.</p>" if len(frame) > max_rows else ""
    return (f"<table><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            f"</table>{more}")


def _figure(folder: Path, chart: Chart) -> str:
    data = base64.b64encode((folder / chart.file).read_bytes()).decode("ascii")
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{_esc(chart.alt)}'>"
            f"<figcaption>{_esc(chart.title)} <a href='{_esc(chart.file)}'>(PNG)</a></figcaption></figure>")


def ward_findings(tables) -> dict[str, list[str]]:
    """Plain-English key findings per ward, from the protected tables."""
    findings: dict[str, list[str]] = {}
    pop = tables.population
    totals = pop[(pop.sex == "All") & (pop.age_band == "All") & (pop.area_type == "ward")]
    if len(totals):
        first_date, last_date = totals.reference_date.min(), totals.reference_date.max()
        la = pop[(pop.sex == "All") & (pop.age_band == "All") & (pop.area_type == "la")]
        la_turb = la.loc[la.reference_date == last_date, "turbulence"]
        for code, group in totals.groupby("area_code"):
            last = group[group.reference_date == last_date].iloc[0]
            first = group[group.reference_date == first_date].iloc[0]
            lines = [f"An estimated {last.estimate:,.0f} residents on {pd.Timestamp(last_date):%d %B %Y} "
                     f"(95% margin {last.lower_95:,.0f} to {last.upper_95:,.0f})."]
            if first_date != last_date and first.estimate:
                change = (last.estimate / first.estimate - 1) * 100
                since = f"{pd.Timestamp(first_date):%B %Y}"
                lines.append(f"The population is about the same as in {since}." if abs(change) < 0.05 else
                             f"The population {'grew' if change > 0 else 'fell'} by about {abs(change):.1f}% since {since}.")
            if pd.notna(last.turbulence) and len(la_turb) and pd.notna(la_turb.iloc[0]):
                more = "more" if last.turbulence > la_turb.iloc[0] else "less"
                lines.append(f"Population turbulence is {last.turbulence:,.0f} moves per 1,000 a year, {more} than the "
                             f"LA's {la_turb.iloc[0]:,.0f}.")
            findings[code] = lines
    ind = tables.indicators
    if len(ind):
        rows = ind[(ind.area_type == "ward") & (ind.breakdown.fillna("All") == "All")].copy()
        rows["judgement"] = judge_significance(rows["significance"], rows["polarity"]).to_numpy()
        for code, group in rows.groupby("area_code"):
            latest = group[group.period_end == group.period_end.max()]
            for verdict in ("worse", "better"):
                hits = latest[latest.judgement == verdict]
                if len(hits):
                    items = ", ".join(f"{r.indicator_name} ({r.value:.1f} {r.unit} against {r.comparator_value:.1f})"
                                      for r in hits.itertuples() if pd.notna(r.value) and pd.notna(r.comparator_value))
                    if items:
                        findings.setdefault(code, []).append(f"Significantly {verdict} than the LA on: {items}.")
            suppressed = latest.value.isna().sum()
            if suppressed:
                findings.setdefault(code, []).append(f"{suppressed} indicator value(s) are suppressed to protect individuals.")
    return findings


def write_report(path: Path, tables, charts: list[Chart], dictionary: pd.DataFrame, metadata: dict) -> Path:
    for frame, name in ((tables.population, "population"), (tables.indicators, "indicators"),
                        (tables.alerts, "alerts"), (dictionary, "dictionary")):
        require_protected(frame, f"the report writer ({name})")
    folder = path.parent
    pop = tables.population
    names = pop.drop_duplicates("area_code").set_index("area_code").area_name if len(pop) else pd.Series(dtype=str)
    la_name = pop.loc[pop.area_type == "la", "area_name"].iloc[0] if (pop.area_type == "la").any() else "the district"
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>Community cohesion indicators: {_esc(la_name)}</title><style>{CSS}</style></head><body>"]
    if tables.synthetic:
        parts.append("<div class='banner' role='note'>SYNTHETIC DEMO DATA: made-up people over real geography. "
                     "No figure in this report describes a real person or place's real population.</div>")
    parts.append(f"<h1>Community cohesion indicators: {_esc(la_name)}</h1>")
    parts.append(f"<p class='meta'>Run {_esc(metadata['run_id'])} · code {_esc(metadata['code_version'])} · started "
                 f"{_esc(metadata.get('started'))}</p>")
    sections = [("findings", "Key findings by ward")]
    order = ["Population", "Indicators", "Ward profiles", "Trends", "Comparisons", "Segregation", "Maps"]
    present = [s for s in order if any(c.section == s for c in charts)]
    sections += [(s.lower().replace(" ", "-"), s) for s in present]
    sections += [("tables", "Tables"), ("alerts", "Alerts"), ("methods", "Methods and caveats"), ("files", "Files")]
    parts.append("<nav aria-label='Contents'><h2 class='first'>Contents</h2><ul>"
                 + "".join(f"<li><a href='#{a}'>{_esc(t)}</a></li>" for a, t in sections) + "</ul></nav>")

    parts.append("<h2 id='findings'>Key findings by ward</h2>")
    findings = ward_findings(tables)
    if not findings:
        parts.append("<p>No ward-level results in this run.</p>")
    for code, lines in sorted(findings.items(), key=lambda kv: str(names.get(kv[0], kv[0]))):
        parts.append(f"<h3>{_esc(names.get(code, code))} ({_esc(code)})</h3>"
                     + "".join(f"<p class='finding'>{_esc(line)}</p>" for line in lines))

    for section in present:
        parts.append(f"<h2 id='{section.lower().replace(' ', '-')}'>{_esc(section)}</h2>")
        if section == "Maps":
            parts.append("<p>Areas are drawn from the points of their postcodes (Voronoi cells merged by area and "
                         "clipped to the district), not from official boundaries.</p>")
        for chart in (c for c in charts if c.section == section):
            parts.append(_figure(folder, chart))

    parts.append("<h2 id='tables'>Tables</h2>")
    totals = pop[(pop.sex == "All") & (pop.age_band == "All") & pop.area_type.isin(["la", "ward"])]
    if len(totals):
        latest = totals[totals.reference_date == totals.reference_date.max()]
        parts.append(_table(latest, ["area_name", "area_code", "area_type", "reference_date", "estimate", "lower_95",
                                     "upper_95", "gp_list", "turbulence", "note"],
                            "Population estimates, LA and wards, latest extract (rounded)"))
    ind = tables.indicators
    if len(ind):
        cut = ind[(ind.breakdown.fillna("All") == "All") & ind.area_type.isin(["la", "ward"])]
        cut = cut[cut.period_end == cut.groupby("indicator_id").period_end.transform("max")]
        parts.append(_table(cut, ["indicator_id", "area_name", "period_end", "value", "lower_95", "upper_95", "unit",
                                  "comparator_value", "significance", "polarity", "note"],
                            "Indicators, LA and wards, latest period", max_rows=400))
    else:
        parts.append("<p>No indicator tables were built in this run.</p>")

    parts.append("<h2 id='alerts'>Alerts</h2>")
    parts.append(_table(tables.alerts, ["indicator_id", "area_name", "period_end", "value", "expected", "direction",
                                        "message"], "Early warnings of sudden change"))

    parts.append("<h2 id='methods'>Methods and caveats</h2>")
    notes = dictionary[dictionary["item"] == "indicator"]
    parts.append("<ul>"
                 "<li>Population estimates (COHDMAP) roll a base population forward with GP register flows, correct "
                 "for list inflation and carry a 95% margin of error that widens with population turbulence.</li>"
                 "<li>Significance: an area is significantly higher or lower than its comparator when the comparator "
                 "lies outside the area's 95% confidence interval (Fingertips' method); colours and marker shapes "
                 "read better or worse by each indicator's polarity.</li>"
                 f"<li>Protecting individuals: modelled figures are rounded to the nearest "
                 f"{metadata['disclosure_control']['round_modelled_to']}; counts of people from 1 to "
                 f"{metadata['disclosure_control']['min_cell_count'] - 1} are suppressed, and so is any other cell that "
                 "would let one be worked out by subtraction (from a total, the other sex or a neighbouring area); "
                 f"survey values on fewer than {metadata['disclosure_control']['min_survey_base']} respondents are "
                 "suppressed.</li></ul>")
    if len(notes):
        parts.append(_table(notes, ["name", "definition", "source", "method", "polarity", "caveats"],
                            "Indicator definitions", max_rows=500))

    parts.append("<h2 id='files'>Files</h2><ul>")
    for name, text in (("population_estimates.csv", "population estimates"), ("indicators.csv", "indicators"),
                       ("alerts.csv", "alerts"), ("data_dictionary.csv", "data dictionary"),
                       ("cohesion_tables.xlsx", "Excel workbook"), ("metadata.json", "run metadata"),
                       ("README.md", "README: every column explained")):
        parts.append(f"<li><a href='{name}'>{name}</a>: {text}</li>")
    parts.append("</ul></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
