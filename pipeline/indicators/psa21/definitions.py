"""Survey definitions (config/surveys.toml): which answers count, which are out of the base.

    load_definitions(path) -> SurveyDefinitions
    score_respondents(responses, indicator) -> frame of in_base (bool), counted (0/1)

Scoring follows the official definitions cited in docs/psa21_definitions.md: agreement among
those expressing an opinion ("don't know" and, for NI 1, "too few people" and "all same
background" are out of the base); for a combined measure ("any") a respondent counts when any
question has a counted answer, and is in the base only with every question answered, so that
item non-response (missing at random) cannot bias the share either way.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config import PROJECT_ROOT
from schemas.vocabulary import SURVEY_AGE_BANDS


class IndicatorDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    domain: str
    unit: Literal["%"] = "%"
    polarity: Literal["higher is better", "lower is better", "no judgement"] = "higher is better"
    questions: tuple[str, ...] = Field(min_length=1)
    counted: tuple[int, ...] = Field(min_length=1)
    excluded: tuple[int, ...] = ()
    valid: tuple[int, ...]
    combine: Literal["single", "any"] = "single"
    optional: bool = False
    baseline: str | None = None
    benchmark: str | None = None
    benchmark_value: float | None = None

    @model_validator(mode="after")
    def _codes_consistent(self):
        stray = (set(self.counted) | set(self.excluded)) - set(self.valid)
        if stray:
            raise ValueError(f"indicator {self.id}: codes {sorted(stray)} are counted or excluded "
                             f"but not in valid {list(self.valid)}")
        if set(self.counted) & set(self.excluded):
            raise ValueError(f"indicator {self.id}: a code cannot be both counted and excluded")
        if self.combine == "single" and len(self.questions) != 1:
            raise ValueError(f"indicator {self.id}: combine = 'single' takes one question; use combine = 'any'")
        if (self.benchmark is None) != (self.benchmark_value is None):
            raise ValueError(f"indicator {self.id}: give both benchmark and benchmark_value, or neither")
        return self


class SurveySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    age_bands: tuple[str, ...] = SURVEY_AGE_BANDS  # the shared vocabulary's survey bands
    breakdowns: tuple[str, ...] = ("sex", "age_band", "ethnic_group", "disability", "religion")

    @model_validator(mode="after")
    def _bands_parse(self):
        survey_band_edges(self.age_bands)
        return self


class SurveyDefinitions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    survey: SurveySection = Field(default_factory=lambda: SurveySection())
    indicator: tuple[IndicatorDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self):
        ids = [d.id for d in self.indicator]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"indicator ids must be unique; repeated: {dupes}")
        return self


def load_definitions(path: str | Path) -> SurveyDefinitions:
    """Read and validate the survey definitions file (relative paths are from the project root)."""
    path = Path(path)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.exists():
        raise FileNotFoundError(f"survey definitions file {path} not found: set [psa21] definitions in config.toml")
    try:
        return SurveyDefinitions(**tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def survey_band_edges(bands) -> list[int]:
    """Lower ages of survey bands written '16-24', ..., '75+' (contiguous, the last open)."""
    edges: list[int] = []
    prev_hi = -1
    for i, band in enumerate(bands):
        lo, _, hi = band.partition("-")
        if band.endswith("+"):
            if i != len(bands) - 1:
                raise ValueError(f"survey age band {band!r}: only the last band may be open ('75+')")
            edges.append(int(band[:-1]))
            continue
        if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
            raise ValueError(f"survey age band {band!r} is not written 'lo-hi' (e.g. '16-24') or 'lo+'")
        if edges and int(lo) != prev_hi + 1:
            raise ValueError(f"survey age bands must be contiguous: {band!r} does not follow {bands[i - 1]!r}")
        edges.append(int(lo))
        prev_hi = int(hi)
    if not bands[-1].endswith("+"):
        raise ValueError("the last survey age band must be open, e.g. '75+'")
    return edges


def score_respondents(responses: pd.DataFrame, indicator: IndicatorDefinition) -> pd.DataFrame:
    """``in_base`` (bool) and ``counted`` (1/0, 0 outside the base) per respondent, in `responses`' order."""
    missing = [q for q in indicator.questions if q not in responses.columns]
    if missing:
        raise ValueError(f"indicator {indicator.id}: the survey has no column {missing}; map the survey's own column "
                         "to it in the definitions file (questions = [...])")
    answers = np.column_stack([
        pd.to_numeric(responses[q], errors="coerce").to_numpy(dtype=float) for q in indicator.questions])
    valid = np.isin(answers, indicator.valid)
    counted = np.isin(answers, indicator.counted) & valid
    excluded = np.isin(answers, indicator.excluded)
    if indicator.combine == "single":
        in_base = valid[:, 0] & ~excluded[:, 0]
        yes = counted[:, 0]
    else:  # "any": complete answers only; out of the base if any question is excluded
        in_base = valid.all(axis=1) & ~excluded.any(axis=1)
        yes = counted.any(axis=1)
    return pd.DataFrame({"in_base": in_base, "counted": (yes & in_base).astype(int)}, index=responses.index)
