"""The run's configuration: one `config.toml` at the project root, validated here.

Environment variables prefixed ``COHESION_`` override the file (nested keys with ``__``,
e.g. ``COHESION_DEMO__SCALE=0.1``), so `make all DATA_DIR=...` can point a run elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.indicators.psa21.settings import Psa21Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"


class DemoSettings(BaseModel):
    seed: int = 2026
    scale: float = Field(1.0, gt=0, le=5)
    n_lsoas: int = Field(0, ge=0)
    start_date: dt.date = dt.date(2022, 6, 30)
    quarters: int = Field(8, ge=4, le=40)
    churn_mix: Literal["trafford", "settled", "turbulent"] = "trafford"
    survey_size: int = Field(4000, ge=0)


class IngestSettings(BaseModel):
    on_unreadable: Literal["stop", "skip"] = "stop"
    lock_timeout_seconds: float = Field(0, ge=0)
    header_map: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("header_map")
    @classmethod
    def _lower_keys(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {src: {k.strip().lower(): v.strip().lower() for k, v in m.items()} for src, m in value.items()}


class ValidationSettings(BaseModel):
    min_postcode_match: float = Field(0.97, ge=0, le=1)
    max_list_change: float = Field(0.10, gt=0)
    min_list_for_change_check: int = Field(500, ge=0)
    list_change_mostly: float = Field(0.95, gt=0, le=1)
    # expectations (short names, see pipeline/validate) whose failure stops the run before estimates
    critical_expectations: list[str] = Field(default_factory=lambda: ["rows_accounted_for", "one_row_per_patient"])


class EstimateSettings(BaseModel):
    method: Literal["cohdmap"] = "cohdmap"
    base_source: str = ""
    shrinkage_strength: float = Field(50.0, ge=0)
    interval_level: float = Field(0.95, gt=0.5, lt=1)
    birth_registration_lag_days: int = Field(60, ge=0)
    blend_base: bool = True  # move each LSOA's base towards its list-implied population (estimates/base.py)
    death_removal_lag_days: int = Field(30, ge=0)  # deaths this recent are assumed still on the list
    cleaning_threshold: float = Field(3.0, gt=1)  # no gp_movements: a practice's leavers above this x usual = list cleaning
    ethnicity_shrinkage: float = Field(20.0, ge=0)  # pseudo-count pulling a cell's ethnic shares to its LSOA's
    margin_model_path: str = ""  # "" = pipeline/estimates/margin_model.json (calibrated by the back-test)
    margin_overrides: dict[str, float] = Field(default_factory=dict)  # e.g. {rho = 0.5}: beats margin_model.json


class BasketSettings(BaseModel):
    """The local basket of indicators and its early warnings (pipeline/indicators/basket)."""

    model_config = ConfigDict(extra="forbid")

    definition_path: str = ""  # "" = pipeline/indicators/basket/basket.toml
    baseline_period: dt.date | None = None  # the period_end of the baseline; None = each indicator's first
    funnel_overdispersion: bool = True  # Spiegelhalter's additive random-effects funnel limits
    segregation_iterations: int = Field(200, ge=0)  # random allocations for the expected segregation
    segregation_seed: int = 1
    alert_confidence: float = Field(0.998, ge=0.9, lt=1)  # two-sided; 0.998 = the 99.8% limits
    alert_min_history: int = Field(3, ge=2)  # earlier periods an area needs before it can alert
    alert_min_count: float = Field(5.0, ge=0)  # a rise needs at least this many events
    alert_levels: list[Literal["lsoa", "ward", "la"]] = Field(default_factory=lambda: ["ward", "la"])
    imd_path: str = ""  # IMD 2019 LSOA file (lsoa_code, IMD_rank): "" = no deprivation breakdowns
    imd_lookup_path: str = ""  # ONS 2011 -> 2021 LSOA lookup (lsoa11_code, change_code, lsoa21_code)


class VocabularySettings(BaseModel):
    # where the Chinese codes (NHS R, DfE CHNE) go: "Asian" as in the 2011 and 2021 censuses,
    # or "Other" as in the 2001 census (schemas/vocabulary.py)
    chinese_ethnic_group: Literal["Asian", "Other"] = "Asian"


class OutputSettings(BaseModel):
    min_cell_count: int = Field(8, ge=0)
    # disclosure control rules (pipeline/outputs/disclosure.py); see config.toml [outputs]
    secondary_suppression: bool = True
    min_survey_base: int = Field(50, ge=0)
    survey_domains: list[str] = Field(default_factory=lambda: ["PSA 21", "Perception"])
    round_modelled_to: int = Field(5, ge=1)
    charts: bool = True


class Settings(BaseSettings):
    """Everything a run needs to know; nothing else is read from elsewhere."""

    model_config = SettingsConfigDict(env_prefix="COHESION_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    demo: DemoSettings = DemoSettings()
    ingest: IngestSettings = IngestSettings()
    validation: ValidationSettings = ValidationSettings()
    estimates: EstimateSettings = EstimateSettings()
    basket: BasketSettings = BasketSettings()
    vocabulary: VocabularySettings = VocabularySettings()
    outputs: OutputSettings = OutputSettings()
    psa21: Psa21Settings = Psa21Settings()  # PSA 21 survey indicators (pipeline/indicators/psa21/settings.py)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit arguments win, then the environment, then config.toml (passed as init kwargs)
        return (init_settings, env_settings)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Relative data folders are relative to where the command runs (as `make` does)."""
        return Path(value).expanduser().resolve()

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def truth_dir(self) -> Path:
        """Demo ground truth. Only the demo generator, tests and benchmarks touch it."""
        return self.data_dir / "truth"

    def as_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


def load_settings(path: Path | None = None, **overrides) -> Settings:
    """Read config.toml (or `path`), apply the environment and `overrides`, validate.

    Environment variables beat the file; explicit keyword overrides beat both.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    file_values = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    env_set = Settings().model_dump(exclude_unset=True)  # what the environment set, nothing else
    merged = _deep_merge(_deep_merge(file_values, env_set), {k: v for k, v in overrides.items() if v is not None})
    return Settings(**merged)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
