"""False alarms and detection of the basket's early warnings on generated demo districts.

    .venv/bin/python benchmarks/bench_basket_alerts.py [--seeds 301 302 303 304] [--scale 0.5] [--quarters 8]

For each seed: a demo district over all of Trafford's 139 LSOAs / 21 wards with nothing planted
(the generator's own late changes switched off: incident spike factor 1, no asylum step-up) is run
to the indicators stage with the default [basket] settings; every alert it raises is a false alarm.
The same district is then given a planted surge (tests/surge.py: 20 young migrant workers
registering from abroad in one ward in each of the last two quarters) and run again: the surge is
detected when that ward's new_migrant_registrations alerts in both quarters.

Writes benchmarks/results/basket_alerts.json and .md. Reads truth only through what it planted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pipeline.config import load_settings  # noqa: E402
from pipeline.demo import RATES, generate_district  # noqa: E402
from pipeline.run import run_pipeline  # noqa: E402
from surge import plant_migrant_surge  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def run_district(data: Path, seed: int, scale: float, quarters: int, plant: bool) -> dict:
    settings = load_settings(data_dir=data, demo={"seed": seed, "scale": scale, "quarters": quarters, "n_lsoas": 0,
                                                  "survey_size": 0})
    rates = dataclasses.replace(RATES, incident_spike_factor=1.0, asylum_step_up_per_quarter=0.0)
    generate_district(settings.demo, data, rates)
    planted = plant_migrant_surge(data / "raw") if plant else None
    started = time.perf_counter()
    run_pipeline(settings, "indicators")
    seconds = time.perf_counter() - started
    con = duckdb.connect(str(data / "processed" / "cohesion.duckdb"), read_only=True)
    alerts = con.execute("SELECT indicator_id, area_code, area_type, CAST(period_end AS VARCHAR), direction "
                         "FROM alerts").fetchall()
    wards = con.execute("SELECT count(DISTINCT area_code) FROM basket_indicators WHERE area_type = 'ward' "
                        "AND indicator_id = 'new_migrant_registrations'").fetchone()[0]
    periods = con.execute("SELECT count(DISTINCT period_end) FROM basket_indicators "
                          "WHERE indicator_id = 'new_migrant_registrations'").fetchone()[0]
    con.close()
    return {"seed": seed, "planted": planted, "alerts": alerts, "wards": wards, "periods": periods,
            "seconds_pipeline": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--quarters", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings()
    monitored = args.quarters - settings.basket.alert_min_history  # periods that can raise an alert
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            clean = run_district(Path(tmp) / "clean", seed, args.scale, args.quarters, plant=False)
            surged = run_district(Path(tmp) / "surge", seed, args.scale, args.quarters, plant=True)
        ward = surged["planted"]["ward_code"]
        ends = surged["planted"]["period_ends"]
        hits = {a[3] for a in surged["alerts"] if a[0] == "new_migrant_registrations" and a[1] == ward and a[4] == "rise"}
        other = [a for a in surged["alerts"] if a[1] != ward and a[2] != "la"]
        ward_alerts = [a for a in clean["alerts"] if a[2] == "ward"]
        ward_years = clean["wards"] * monitored / 4
        row = {"seed": seed, "wards": clean["wards"], "periods": clean["periods"], "monitored_periods": monitored,
               "false_alarms_ward": len(ward_alerts), "false_alarms_la": len(clean["alerts"]) - len(ward_alerts),
               "false_alarms_per_20_ward_years": round(len(ward_alerts) / ward_years * 20, 3),
               "surge_quarters_flagged": f"{len(hits & set(ends))}/{len(ends)}",
               "other_ward_alerts_with_surge": len(other),
               "false_alarm_list": clean["alerts"], "seconds_pipeline": clean["seconds_pipeline"]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "false_alarm_list"}), flush=True)
    total_alerts = sum(r["false_alarms_ward"] for r in rows)
    total_ward_years = sum(r["wards"] * monitored / 4 for r in rows)
    summary = {"command": "benchmarks/bench_basket_alerts.py " + " ".join(sys.argv[1:]), "scale": args.scale,
               "quarters": args.quarters, "settings": settings.basket.model_dump(mode="json"),
               "false_alarms_per_20_ward_years": round(total_alerts / total_ward_years * 20, 3),
               "ward_years": total_ward_years, "ward_false_alarms": total_alerts,
               "surges_fully_flagged": sum(r["surge_quarters_flagged"] == "2/2" for r in rows), "districts": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "basket_alerts.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = ["# Early warnings on demo districts: false alarms and a planted surge", "",
             f"Command: `.venv/bin/python {summary['command']}` (scale {args.scale}, {args.quarters} quarters, "
             f"all 139 LSOAs / 21 wards, default `[basket]` settings; first {settings.basket.alert_min_history} "
             "periods are history only).", "",
             f"**False alarms: {summary['false_alarms_per_20_ward_years']} ward alerts per 20 ward-years** "
             f"({total_alerts} in {total_ward_years:g} ward-years; aim <= 1). Planted surges flagged in both quarters: "
             f"{summary['surges_fully_flagged']} of {len(rows)}.", "",
             "| seed | wards | ward false alarms | LA false alarms | per 20 ward-years | surge quarters flagged | other ward alerts with the surge |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['wards']} | {r['false_alarms_ward']} | {r['false_alarms_la']} | "
                     f"{r['false_alarms_per_20_ward_years']} | {r['surge_quarters_flagged']} | {r['other_ward_alerts_with_surge']} |")
    lines += ["", "False alarms by indicator (all seeds):", ""]
    counts: dict[str, int] = {}
    for r in rows:
        for a in r["false_alarm_list"]:
            counts[a[0]] = counts.get(a[0], 0) + 1
    lines += [f"- {k}: {v}" for k, v in sorted(counts.items())] or ["- none"]
    (RESULTS / "basket_alerts.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
