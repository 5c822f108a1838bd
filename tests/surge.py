"""Plant a surge in a generated demo district's raw files (tests and benchmarks only).

    plant_migrant_surge(raw_dir, per_quarter=20, quarters=2)

adds a block of young migrant workers (aged 19-30, registered from abroad: Flag 4, `from_abroad`
registrations in gp_movements) arriving in one ward over the last `quarters` quarters: each
arrival is on every GP extract from their quarter on and has a registration event in
gp_movements. Returns the ward's code and the period ends of the surge. Synthetic, like the rest.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np


def plant_migrant_surge(raw_dir: Path, per_quarter: int = 20, quarters: int = 2, ward_code: str | None = None,
                        seed: int = 7) -> dict:
    raw_dir = Path(raw_dir)
    rng = np.random.default_rng(seed)
    with open(raw_dir / "geography" / "postcode_directory.csv", newline="") as f:
        directory = list(csv.DictReader(f))
    extracts = sorted((raw_dir / "gp_register").glob("gp_register_*.csv"))
    dates = [dt.date.fromisoformat(p.stem.split("_")[-1]) for p in extracts]
    with open(extracts[-1], newline="") as f:
        rows = list(csv.DictReader(f))
    in_area = {r["postcode"]: r["ward_code"] for r in directory}
    wards = sorted({in_area[r["postcode"]] for r in rows if r["postcode"] in in_area})
    ward = ward_code or wards[0]
    postcodes = [r["postcode"] for r in directory if r["ward_code"] == ward]
    practices = [r["practice_code"] for r in rows if in_area.get(r["postcode"]) == ward]
    practice = max(set(practices), key=practices.count)
    arrivals = []  # (quarter index, patient row)
    for q in range(len(dates) - quarters, len(dates)):
        start, end = dates[q - 1], dates[q]
        for i in range(per_quarter):
            reg = start + dt.timedelta(days=int(rng.integers(1, (end - start).days)))
            age_days = int(rng.integers(19 * 365, 31 * 365))
            arrivals.append((q, {
                "patient_id": f"PSURGE{q:02d}{i:03d}", "practice_code": practice,
                "postcode": str(rng.choice(postcodes)), "sex": "M" if rng.random() < 0.6 else "F",
                "date_of_birth": (reg - dt.timedelta(days=age_days)).isoformat(),
                "registration_date": reg.isoformat(), "from_abroad": "Y", "ethnic_category": "C"}))
    for k, path in enumerate(extracts):
        with open(path, "a", newline="") as f:
            writer = csv.writer(f, lineterminator=_line_end(path))
            for q, a in arrivals:
                if q <= k:
                    writer.writerow([dates[k].isoformat(), a["patient_id"], a["practice_code"], a["postcode"], a["sex"],
                                     a["date_of_birth"], a["registration_date"], a["from_abroad"], a["ethnic_category"]])
    movements = raw_dir / "gp_movements" / "gp_movements.csv"
    if movements.exists():
        with open(movements, "a", newline="") as f:
            writer = csv.writer(f, lineterminator=_line_end(movements))
            for _, a in arrivals:
                writer.writerow([a["patient_id"], a["practice_code"], a["postcode"], a["registration_date"],
                                 "registration", "from_abroad"])
    return {"ward_code": ward, "period_ends": [d.isoformat() for d in dates[len(dates) - quarters:]],
            "arrivals": len(arrivals)}


def _line_end(path: Path) -> str:
    """The file's own line ending (extracts come with either)."""
    with open(path, "rb") as f:
        return "\r\n" if f.readline().endswith(b"\r\n") else "\n"
