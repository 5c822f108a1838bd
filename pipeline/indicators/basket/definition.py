"""The basket definition file (basket.toml): what each indicator is, validated before anything runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from schemas.published import POLARITY

HERE = Path(__file__).resolve().parent
DEFAULT_BASKET = HERE / "basket.toml"
SQL_DIR = HERE / "sql" / "indicators"
UNITS = ("%", "per 1,000", "per 100,000", "index 0-1", "count")
# the interval method each statistic uses: Byar's (exact below 10 events), Wilson score, the range
# random allocation gives (segregation), none (counts, diversity)
INTERVALS = {"rate": "byars", "proportion": "wilson", "segregation": "random allocation", "count": "none",
             "diversity": "none"}


class BasketError(Exception):
    """The basket definition is wrong: the message names the indicator and the key."""


class IndicatorDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    domain: str
    sql: str
    statistic: Literal["rate", "proportion", "count", "segregation", "diversity"]
    multiplier: float = 1.0
    unit: str
    polarity: str = "no judgement"
    levels: tuple[Literal["lsoa", "ward", "la"], ...] = ("ward", "la")
    period: str = ""
    alert: bool = False
    advice: str = ""
    index: Literal["dissimilarity", "isolation", "exposure", "entropy"] | None = None
    interval: Literal["byars", "wilson", "random allocation", "none"] | None = None  # None = the statistic's own
    base_dir: Path = Field(default=SQL_DIR, exclude=True)

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError("ids are lower case letters, digits and _ (e.g. new_migrant_registrations)")
        return value

    @field_validator("polarity", "unit")
    @classmethod
    def _one_of_the_known_values(cls, value: str, info: ValidationInfo) -> str:
        allowed = {"polarity": POLARITY, "unit": UNITS}[info.field_name]
        if value not in allowed:
            raise ValueError(f"{info.field_name} must be one of {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "IndicatorDefinition":
        if self.statistic == "segregation" and self.index is None:
            raise ValueError("a segregation indicator needs index = dissimilarity, isolation, exposure or entropy")
        if self.alert and self.statistic != "rate":
            raise ValueError("alerts (alert = true) are for rate indicators only")
        own = INTERVALS[self.statistic]
        if self.interval is not None and self.interval != own:
            raise ValueError(f"interval for a {self.statistic} is '{own}' (the method the statistic uses)")
        if self.statistic in ("rate", "proportion") and self.multiplier <= 0:
            raise ValueError("multiplier must be positive (1000 for per 1,000, 100 for a percentage)")
        if not self.sql_path.is_file():
            raise ValueError(f"sql file {self.sql_path} does not exist")
        return self

    @property
    def sql_path(self) -> Path:
        path = Path(self.sql)
        if path.is_absolute():
            return path
        own = self.base_dir / path
        return own if own.is_file() else SQL_DIR / path  # the built-in SQL when the file has none of its own


def load_basket(path: Path | str | None = None) -> list[IndicatorDefinition]:
    """Read and check the basket file; SQL paths are relative to sql/indicators/ (or the file's folder)."""
    path = Path(path) if path else DEFAULT_BASKET
    if not path.is_file():
        raise BasketError(f"basket definition {path} does not exist (config.toml [basket] definition_path)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BasketError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(raw) - {"indicator"}
    if unknown:
        raise BasketError(f"{path}: unknown top-level keys {', '.join(sorted(unknown))}; write [[indicator]] tables")
    entries = raw.get("indicator", [])
    if not entries:
        raise BasketError(f"{path}: no [[indicator]] tables")
    base = SQL_DIR if path.resolve() == DEFAULT_BASKET else path.resolve().parent
    definitions, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        label = entry.get("id", f"number {number}")
        try:
            definition = IndicatorDefinition(**entry, base_dir=base)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'indicator'}: {e['msg']}" for e in exc.errors())
            raise BasketError(f"{path}: indicator {label}: {problems}") from exc
        if definition.id in seen:
            raise BasketError(f"{path}: indicator id {definition.id} appears twice; ids are unique")
        seen.add(definition.id)
        definitions.append(definition)
    return definitions
