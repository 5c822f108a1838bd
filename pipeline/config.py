"""The run's configuration: one `config.toml` at the project root, validated here.

Environment variables prefixed ``COHESION_`` override the file (nested keys with ``__``,
e.g. ``COHESION_DEMO__SCALE=0.1``), so `make all DATA_DIR=...` can point a run elsewhere.

Strict: every section refuses keys it does not know, a ``--config`` file or a referenced file
(``margin_model_path``) that does not exist is an error, header maps and date forms must name
real sources, and unknown ``COHESION_*`` variables are warned about. Every mistake is reported
as one line naming the section and key (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.contracts import SOURCES, layouts_for
from schemas.types import DATE_FORMS, DEFAULT_DATE_FORMS

from pipeline.indicators.psa21.settings import Psa21Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"
ENV_PREFIX = "COHESION_"
PUBLISHED_INTERVAL_LEVEL = 0.95  # the interval columns are named lower_95 / upper_95

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration mistake, in one line naming the section and key."""


class Section(BaseModel):
    """A section of config.toml: unknown keys are refused (a misspelt key must not leave the default in force)."""

    model_config = ConfigDict(extra="forbid")


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class DemoSettings(Section):
    seed: int = 2026
    scale: float = Field(1.0, gt=0, le=5)
    n_lsoas: int = Field(0, ge=0)
    start_date: dt.date = dt.date(2022, 6, 30)
    quarters: int = Field(8, ge=4, le=40)
    churn_mix: Literal["trafford", "settled", "turbulent"] = "trafford"
    survey_size: int = Field(4000, ge=0)


class IngestSettings(Section):
    on_unreadable: Literal["stop", "skip"] = "stop"
    lock_timeout_seconds: float = Field(0, ge=0)
    header_map: dict[str, dict[str, str]] = Field(default_factory=dict)
    read_subfolders: bool = False  # read files in subfolders of raw/<source>/ (e.g. archive/) too
    unknown_folders: Literal["stop", "skip"] = "stop"  # a folder in raw/ that is not a source
    on_duplicate_across_files: Literal["stop", "quarantine"] = "stop"  # a key (patient x extract date) in two files
    on_nothing_loaded: Literal["stop", "skip"] = "stop"  # a file with no rows, or whose every row is quarantined
    date_forms: dict[str, list[str]] = Field(default_factory=lambda: {"default": list(DEFAULT_DATE_FORMS)})

    @field_validator("header_map")
    @classmethod
    def _known_sources_and_columns(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for source, mapping in value.items():
            if source not in SOURCES:
                raise ValueError(f"unknown source '{source}'{_suggest(source, SOURCES)} (sources: {', '.join(SOURCES)})")
            columns = {c for layout in layouts_for(source) for c in layout.columns}
            for ours in mapping:
                if ours.strip().lower() not in columns:
                    raise ValueError(f"[ingest.header_map.{source}] {ours}: not a {source} column"
                                     f"{_suggest(ours.strip().lower(), columns)}")
        return {src: {k.strip().lower(): v.strip().lower() for k, v in m.items()} for src, m in value.items()}

    @field_validator("date_forms")
    @classmethod
    def _known_date_forms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for source, forms in value.items():
            if source != "default" and source not in SOURCES:
                raise ValueError(f"unknown source '{source}'{_suggest(source, SOURCES)} (use 'default' or a source: "
                                 f"{', '.join(SOURCES)})")
            for form in forms:
                if form not in DATE_FORMS:
                    raise ValueError(f"[ingest.date_forms] {source}: unknown date form '{form}' "
                                     f"(known: {', '.join(f'{f.name} = {f.example}' for f in DATE_FORMS.values())})")
            if not forms:
                raise ValueError(f"[ingest.date_forms] {source}: give at least one date form")
        return {"default": list(DEFAULT_DATE_FORMS), **value}

    def date_forms_for(self, source: str) -> tuple[str, ...]:
        return tuple(self.date_forms.get(source, self.date_forms["default"]))


GB = 10**9  # DuckDB's "GB"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|BYTES|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*", re.IGNORECASE)
_UNITS = {"B": 1, "BYTES": 1, "KB": 10**3, "MB": 10**6, "GB": GB, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_memory_size(text: str) -> int | None:
    """Bytes in a DuckDB memory size ("6GB", "1.5 GiB", "800MB", and DuckDB's own display of a setting,
    "3.7 GiB" or "512 bytes"); None for "" or a form it does not read."""
    match = _SIZE.fullmatch(text or "")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()]) if match else None


class EngineSettings(Section):
    """How the SQL engine may use the machine (pipeline/run.py applies it to every run's DuckDB)."""

    memory_limit: str = "6GB"  # DuckDB spills to temp_directory beyond this ("" = DuckDB's default, 80% of RAM)
    # while the stages that stream record-level rows run (ingest, validate, psa21, basket: Stage.streams_records);
    # "" = memory_limit; "auto" = sized to the largest raw file (run.stage_memory_limit: at least 1GB, which keeps a
    # 10-million-row extract under 2 GiB, and at most memory_limit less 2GB)
    ingest_memory_limit: str = "auto"
    # while a stage holding per-cell arrays in Python runs (estimates); "" = memory_limit. The arrays sit on
    # top of DuckDB's limit: 4GB keeps the national estimate stage under 6 GiB (benchmarks/results/national_full_estimates.md)
    arrays_memory_limit: str = "4GB"
    temp_directory: str = ""  # "" = a .spill folder in the run's staging folder (removed when the run ends)
    threads: int = Field(0, ge=0)  # 0 = one per core


class ValidationSettings(Section):
    min_postcode_match: float = Field(0.97, ge=0, le=1)
    max_list_change: float = Field(0.10, gt=0)
    min_list_for_change_check: int = Field(500, ge=0)
    list_change_mostly: float = Field(0.95, gt=0, le=1)
    # expectations (short names, see pipeline/validate) whose failure stops the run before estimates
    critical_expectations: list[str] = Field(default_factory=lambda: ["rows_accounted_for", "one_row_per_patient"])


class EstimateSettings(Section):
    method: Literal["cohdmap"] = "cohdmap"
    base_source: str = ""
    shrinkage_strength: float = Field(50.0, ge=0)
    # each cell's inflation at t0: "own" = the cell's own list / base (no pseudo-count), "shrunk" = towards
    # the ward's and LA's by shrinkage_strength, "auto" = own where the register gives the cell's list
    # exactly (register modes), shrunk where it is modelled (counts-only) (cohort_model.choose_inflation_strength; issue 9)
    cell_inflation: Literal["auto", "own", "shrunk"] = "auto"
    interval_level: float = Field(0.95, gt=0.5, lt=1)
    birth_registration_lag_days: int = Field(60, ge=0)
    blend_base: bool = True  # move each LSOA's base towards its list-implied population (estimates/base.py)
    # what the list-informed base expects inflation to follow (its curve m): "none" = the LA's mean,
    # "young_share" = the share of the LSOA's list aged 18-34 at the first extract (cohort_model.py),
    # "auto" = young_share where the register gives the list's ages, none where they are modelled
    # (counts-only mode) (cohort_model.choose_blend_covariate; issue 9)
    blend_covariate: Literal["auto", "none", "young_share"] = "auto"
    # the change in list inflation since the first extract, measured as the LA's list-to-school-census
    # ratio of children of years R-11 (estimates/school_signal.py; issue 9): "la" divides the list's
    # change by it, "off" keeps inflation fixed at t0. Off whenever there is no school census.
    school_signal: Literal["off", "la"] = "la"
    death_removal_lag_days: int = Field(30, ge=0)  # deaths this recent are assumed still on the list
    cleaning_threshold: float = Field(3.0, gt=1)  # no gp_movements: a practice's leavers above this x usual = list cleaning
    ethnicity_shrinkage: float = Field(20.0, ge=0)  # pseudo-count pulling a cell's ethnic shares to its LSOA's
    margin_model_path: str = ""  # "" = pipeline/estimates/margin_model.json (calibrated by the back-test)
    margin_overrides: dict[str, float] = Field(default_factory=dict)  # e.g. {rho = 0.5}: beats margin_model.json

    @field_validator("interval_level")
    @classmethod
    def _published_level(cls, value: float) -> float:
        if value != PUBLISHED_INTERVAL_LEVEL:
            raise ValueError(f"{value} is not supported: the estimates publish 95% intervals in columns lower_95 / "
                             f"upper_95, so interval_level must be {PUBLISHED_INTERVAL_LEVEL}")
        return value

    @field_validator("margin_model_path")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        if not value:
            return value
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"no such file: {path} (leave it \"\" for the calibrated pipeline/estimates/margin_model.json)")
        return str(path)


class BasketSettings(Section):
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


class VocabularySettings(Section):
    # where the Chinese codes (NHS R, DfE CHNE) go: "Asian" as in the 2011 and 2021 censuses,
    # or "Other" as in the 2001 census (schemas/vocabulary.py)
    chinese_ethnic_group: Literal["Asian", "Other"] = "Asian"


class OutputSettings(Section):
    min_cell_count: int = Field(8, ge=0)
    # disclosure control rules (pipeline/outputs/disclosure.py); see config.toml [outputs]
    secondary_suppression: bool = True
    min_survey_base: int = Field(50, ge=0)
    survey_domains: list[str] = Field(default_factory=lambda: ["PSA 21", "Perception"])
    round_modelled_to: int = Field(5, ge=1)
    charts: bool = True


class KnownEnvironment(EnvSettingsSource):
    """The COHESION_* variables that name a setting; the others are warned about and ignored."""

    def __init__(self, settings_cls):
        super().__init__(settings_cls)
        unknown = {name.lower() for name in unknown_environment(self.env_vars)}
        self.env_vars = {k: v for k, v in self.env_vars.items() if k.lower() not in unknown}


class Settings(BaseSettings):
    """Everything a run needs to know; nothing else is read from elsewhere."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    demo: DemoSettings = DemoSettings()
    ingest: IngestSettings = IngestSettings()
    engine: EngineSettings = EngineSettings()
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
        return (init_settings, KnownEnvironment(settings_cls))

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

    Environment variables beat the file; explicit keyword overrides beat both. Any mistake raises
    `ConfigError` with one line naming the file, section and key.
    """
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"--config {path}: no such file")
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        file_values = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for name in unknown_environment(os.environ):
        log.warning("environment variable %s sets nothing (no such setting; ignored): check its spelling "
                    "(COHESION_<SECTION>__<KEY>, e.g. COHESION_DEMO__SCALE)", name)
    try:
        env_set = Settings().model_dump(exclude_unset=True)  # what the environment set, nothing else
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, "environment (COHESION_* variables)")) from None
    merged = _deep_merge(_deep_merge(file_values, env_set), {k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, path.name)) from None


def describe_errors(exc: ValidationError, where: str) -> str:
    """The validation errors in one line: ``config.toml: [estimates] shrinkage_strenght: unknown key ...``."""
    parts = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        section = loc[0] if loc and loc[0] in SECTION_MODELS else None
        key = ".".join(loc[1:] if section else loc) or "(top level)"
        place = f"[{section}] {key}" if section else key
        if error["type"] == "extra_forbidden":
            known = SECTION_MODELS[section].model_fields if section else Settings.model_fields
            name = loc[-1]
            parts.append(f"{place}: unknown key in {f'[{section}]' if section else 'the top level'}{_suggest(name, known)}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("["):  # the validator named the nested key itself
            parts.append(message)
            continue
        got = error.get("input")
        shown = "" if error["type"] == "value_error" or isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        parts.append(f"{place}: {message}{shown}")
    return f"{where}: " + "; ".join(parts)


def unknown_environment(environ) -> list[str]:
    """COHESION_* variables that set nothing (a misspelt name would otherwise be ignored in silence)."""
    unknown = []
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if parts[0] in SECTION_MODELS:
            model = SECTION_MODELS[parts[0]]
            known = len(parts) >= 2 and parts[1] in model.model_fields and (
                len(parts) == 2 or model.model_fields[parts[1]].annotation not in (int, float, str, bool))
        else:
            known = len(parts) == 1 and parts[0] in Settings.model_fields
        if not known:
            unknown.append(name)
    return unknown


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: field.annotation for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
