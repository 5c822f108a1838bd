"""The [psa21] section of config.toml (validated by pipeline/config.py, which imports this model)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Psa21Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definitions: str = "config/surveys.toml"  # survey question definitions (relative to the project root)
    survey_id: str = ""  # "" = the latest survey loaded (by interview date)
    min_base: int = Field(50, ge=1)  # fewer unweighted respondents in the base: value suppressed with a note
    weight_to: Literal["estimates", "table", "none"] = "estimates"
    margins_table: str = ""  # weight_to = "table": CSV margin,level,population (see config/surveys.toml)
    trim_ratio: float = Field(5.0, ge=0)  # cap weights at this x the median weight (0 = no trimming)
    rake_tolerance: float = Field(1e-6, gt=0, lt=0.05)
    rake_max_iter: int = Field(200, ge=10)
    min_cell_respondents: int = Field(10, ge=1)  # thinner raking cells are merged with a neighbour
    breakdown_areas: list[Literal["la", "ward"]] = Field(default_factory=lambda: ["la", "ward"])
    model_covariates: list[str] = Field(default_factory=lambda: ["turbulence", "minority_share"])
    baseline_table: str = ""  # "" = the shipped Place Survey 2008 table (pipeline/indicators/psa21/reference)
