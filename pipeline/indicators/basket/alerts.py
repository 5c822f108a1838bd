"""Early warnings: each ward's (and the LA's) rate indicators, period by period, against the range
its own history makes plausible (`pipeline.stats.early_warning`, Farrington thresholds).

For an area and a period with at least `alert_min_history` earlier periods, the history is those
earlier periods less any that were themselves flagged (a surge must not become the new normal
it is compared with). The overdispersion φ is estimated per indicator and area type from every
area's history up to the period (Pearson, each area around its own rate), never below 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.indicators.basket.definition import IndicatorDefinition
from pipeline.stats.early_warning import estimate_dispersion, flag_unusual_counts

ALERT_EXTRA = ("count", "expected_count", "phi")


def find_alerts(rows: pd.DataFrame, definitions: list[IndicatorDefinition], settings) -> pd.DataFrame:
    """Alerts (spec/outputs.md alerts.csv columns, then count, expected_count, phi) for rate rows."""
    advice = {d.id: d for d in definitions if d.alert}
    rows = rows[rows["base_id"].isin(advice) & rows["area_type"].isin(settings.alert_levels)
                & (rows["breakdown"] == "All") & (rows["denominator"] > 0)]
    found = []
    for (indicator, area_type), part in rows.groupby(["indicator_id", "area_type"]):
        found += _alerts_for(part, advice[part["base_id"].iloc[0]], settings)
    columns = ["indicator_id", "area_code", "area_name", "area_type", "period_end", "value", "expected",
               "lower_limit", "upper_limit", "direction", "message", *ALERT_EXTRA]
    return pd.DataFrame(found, columns=columns)


def _alerts_for(part: pd.DataFrame, definition: IndicatorDefinition, settings) -> list[dict]:
    periods = sorted(part["period_end"].unique())
    table = part.set_index(["area_code", "period_end"])
    flagged: set[tuple] = set()
    found = []
    for j, period in enumerate(periods):
        if j < settings.alert_min_history:
            continue
        earlier = periods[:j]
        history, current = [], []
        all_x, all_mu, n_series = [], [], 0
        for area in part["area_code"].unique():
            past = [(area, p) for p in earlier if (area, p) in table.index and (area, p) not in flagged]
            if len(past) < settings.alert_min_history or (area, period) not in table.index:
                continue
            hx = table.loc[past, "numerator"].to_numpy(float)
            hn = table.loc[past, "denominator"].to_numpy(float)
            if hx.sum() > 0:
                all_x += list(hx)
                all_mu += list(hn * hx.sum() / hn.sum())
                n_series += 1
            history.append((area, hx.sum(), hn.sum()))
            current.append(table.loc[(area, period)])
        if not history:
            continue
        phi = estimate_dispersion(all_x, all_mu, max(n_series, 1)) if all_x else 1.0
        cur = pd.DataFrame(current)
        flags = flag_unusual_counts(cur["numerator"], cur["denominator"], [h[1] for h in history],
                                    [h[2] for h in history], phi=phi, confidence=settings.alert_confidence,
                                    min_count=settings.alert_min_count)
        for (area, _, _), (_, row), (_, flag) in zip(history, cur.iterrows(), flags.iterrows()):
            if not flag["direction"]:
                continue
            flagged.add((area, period))
            scale = definition.multiplier / row["denominator"]
            found.append({
                "indicator_id": row["indicator_id"], "area_code": area, "area_name": row["area_name"],
                "area_type": row["area_type"], "period_end": period, "value": row["value"],
                "expected": flag["expected"] * scale, "lower_limit": flag["lower_limit"] * scale,
                "upper_limit": flag["upper_limit"] * scale, "direction": flag["direction"],
                "message": compose_message(row, flag, definition, scale, period),
                "count": row["numerator"], "expected_count": flag["expected"], "phi": phi,
            })
    return found


def compose_message(row, flag, definition: IndicatorDefinition, scale: float, period) -> str:
    """One plain sentence a partner can act on."""
    verb = "rose" if flag["direction"] == "rise" else "fell"
    bound = flag["upper_limit"] if flag["direction"] == "rise" else flag["lower_limit"]
    edge = "above" if flag["direction"] == "rise" else "below"
    what = str(row["indicator_name"]).split(" per ")[0].split(",")[0]
    end = pd.Timestamp(period).strftime("%d %b %Y").lstrip("0")
    text = (f"{what} in {row['area_name']} {verb} to {row['value']:.1f} {definition.unit} in the period to {end} "
            f"({row['numerator']:.0f} against about {flag['expected']:.0f} expected from its own history, "
            f"{edge} the plausible limit of {bound * scale:.1f})")
    return text + (f": {definition.advice}." if definition.advice and flag["direction"] == "rise" else ".")
