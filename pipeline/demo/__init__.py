"""The demo district: a synthetic town over Trafford's real geography, with its ground truth.

    from pipeline.demo import generate_district
    summary = generate_district(settings.demo, settings.data_dir)

writes the raw extracts of shared/spec/inputs.md under ``<data_dir>/raw/<source>/`` and
what really happened under ``<data_dir>/truth/``. If ``raw/`` already holds any file
nothing is written (raw data is read-only) and ``{"skipped": True, ...}`` comes back.
Every record is synthetic; the READMEs beside the files say so.

The model (all rates in `pipeline.demo.rates.DemoRates`; deterministic by ``settings.seed``)
-------------------------------------------------------------------------------------------
Frame (`frame`). Trafford's 139 LSOAs, 21 wards and 11,264 postcodes, the ONS mid-2022
single-year population and the IMD 2019 deciles (two new 2021 LSOAs take their MSOA's
decile). ``n_lsoas`` keeps the first n LSOAs by code. Each LSOA gets a churn level
(low/medium/high) by ranking a score of deprivation, the north of the borough and the
diverse core wards (Old Trafford, Gorse Hill, Stretford): ``churn_mix`` "trafford" cuts
50/30/20%, "settled" 85/12/3%, "turbulent" 25/35/40%. The share not White rises with
deprivation and towards the core (~19% overall, ~60% at the core).

Base (`population`). People are drawn from the MYE counts x ``scale`` (integerised at
random) with exact dates of birth, a postcode in their LSOA (by household weight), a
broad ethnic group (more diverse among the young, in deprived and core areas), an NHS
category A-S and a DfE code consistent with it, a birthplace and a first language, and
the date they moved to their address. The *published* base estimate is this truth with
ONS-like errors: an LSOA factor (sd 2/4/6% by churn), extra error for ages 18-39 and
cell noise, constrained to within ~0.4% of the true LA total.

Time. Quarterly steps from ``start_date`` for ``quarters`` quarters (and sub-steps at school
census days). Each step: deaths (Gompertz by age, worse with deprivation; ~9/1000/yr),
births (age-specific fertility, ~11-13/1000/yr), moves within the district (mostly within
the MSOA), leaving for the rest of the UK, emigration, arrivals from the UK and from
abroad (young adults; arrivals from abroad more diverse) and asylum seekers placed at a
few dispersal postcodes of the most deprived high-churn LSOAs (with a step up in one
of them late in the period). Hazards scale with churn level and an age profile (young
adults move most), giving annual turnover of ~5-8% (low), 12-15% (medium), 25-35% (high).

GP register (`register`). Lags and omissions as real lists have: see that module. Ghosts
are seeded so base-date inflation is ~2-5% (low churn), 7-12% (medium), 15-30% (high).

Schools (`schools`), survey (`survey`), aggregates (`aggregates`), truth (`truth`) and the
file forms (`writers`) are described in their modules. `district.build_district` runs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.config import DemoSettings
from pipeline.demo.rates import RATES, DemoRates

__all__ = ["generate_district", "DemoRates", "RATES"]


def raw_has_files(raw_dir: Path) -> bool:
    return raw_dir.is_dir() and any(p.is_file() for p in raw_dir.rglob("*"))


def generate_district(settings: DemoSettings, data_dir: Path, rates: DemoRates = RATES) -> dict:
    """Write the demo district into ``data_dir/raw`` and its truth into ``data_dir/truth``.

    Does nothing when ``data_dir/raw`` already holds a file. Files are written to a staging
    folder first and moved into place at the end, so a failed run leaves ``raw/`` empty.
    """
    from pipeline.demo.district import build_district  # heavy imports only when generating

    data_dir = Path(data_dir)
    raw_dir, truth_dir = data_dir / "raw", data_dir / "truth"
    if raw_has_files(raw_dir):
        return {"skipped": True, "reason": f"{raw_dir} already holds extracts; it is used as it is",
                "raw_dir": str(raw_dir)}

    staging = data_dir / f".demo-staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        summary = build_district(settings, rates, staging)
        publish_staging(staging, raw_dir, truth_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.update(raw_dir=str(raw_dir), truth_dir=str(truth_dir))
    return summary


MANIFEST = "demo_manifest.json"  # read by pipeline.run: outputs made from this raw/ say they are synthetic


def write_manifest(raw_dir: Path) -> None:
    """Mark raw/ as the synthetic demo district (at the root of raw/, outside every source folder)."""
    import json

    from pipeline import __version__

    (raw_dir / MANIFEST).write_text(json.dumps({
        "synthetic": True, "generator": "pipeline.demo", "version": __version__,
        "note": "SYNTHETIC DEMO DATA: made-up people over Trafford's real geography; no real person",
    }, indent=2), encoding="utf-8")


def publish_staging(staging: Path, raw_dir: Path, truth_dir: Path) -> None:
    """Move the staged raw sources into raw/ (which may exist, empty) and replace truth/."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted((staging / "raw").iterdir()):
        target = raw_dir / item.name
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.replace(item, target)
    write_manifest(raw_dir)
    if truth_dir.exists():
        shutil.rmtree(truth_dir)
    os.replace(staging / "truth", truth_dir)
