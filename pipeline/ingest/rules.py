"""Compile a row contract (schemas/) into vectorised SQL checks over a whole file.

For a raw table of text columns plus ``__line``, `compile_checks` returns two SELECTs:
- ``typed``: every contract column cleaned and cast (``<col>``) beside its cleaned text (``<col>__text``);
- ``violations``: one row per broken rule: ``__line, column, rule, message, value``.
Rule ids are short and stable (they name the quarantine reason):

| rule | when |
|---|---|
| missing_value | a required column is blank |
| bad_date, bad_number, bad_code, bad_format | a value does not parse, is not in the code list, or does not match the pattern |
| out_of_range | a number below its minimum (e.g. a negative count) |
| nhs_number | an identifier column (`identifier_columns`) holds what looks like an NHS number (value redacted) |
| <contract rule> | cross-column rules declared on the contract (dates in the wrong order, …) |
| duplicate_record | a second row with the same key in one file (the first is kept) |
| mixed_<column> | a value that differs from the rest of the file (one extract date per snapshot) |
| unknown_postcode, unknown_area | the place is not in the postcode directory or the area codes |
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass

import annotated_types
from pydantic.fields import FieldInfo

from schemas.types import DEFAULT_DATE_FORMS, Contract, SqlForm, date_examples, date_sql, nhs_number_sql

_PARSE_RULE = {"DATE": "bad_date", "BIGINT": "bad_number", "DOUBLE": "bad_number", "INTEGER": "bad_number",
               "BOOLEAN": "bad_code"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnSpec:
    name: str  # the canonical (Python) name, used in typed tables
    raw: str  # the raw column it is read from (the alias, where one is set)
    form: SqlForm
    required: bool
    codes: tuple | None
    pattern: str | None
    minimum: tuple[str, float] | None  # ("ge"|"gt", bound)
    date_forms: tuple[str, ...] = ()  # a date column: the forms it accepts (schemas.types.DATE_FORMS)

    @property
    def text_expr(self) -> str:
        raw = f"NULLIF(trim({quote(self.raw)}), '')"
        return "(" + self.form.clean.replace("{x}", raw) + ")"

    @property
    def typed_expr(self) -> str:
        return self.cast_expr(self.text_expr)

    def cast_expr(self, text: str) -> str:
        """The typed value read from `text`, the column's cleaned text (NULL when it does not parse)."""
        cast = self.form.cast.replace("{date}", date_sql("{x}", self.date_forms)) if self.date_forms else self.form.cast
        return "(" + cast.replace("{x}", text) + ")"

    @property
    def expected(self) -> str:
        if self.date_forms:
            return f"{self.form.expected} such as {date_examples(self.date_forms)}"
        return self.form.expected


def column_specs(contract: type[Contract], date_forms: tuple[str, ...] = DEFAULT_DATE_FORMS) -> list[ColumnSpec]:
    """Read each field's type, code list, pattern and bounds off the pydantic model.

    Date columns accept `date_forms` (the source's configured forms) and their type's built-in ones."""
    specs = []
    for name, info in contract.model_fields.items():
        annotation = info.annotation
        metadata = list(info.metadata)
        # unwrap Optional[Annotated[...]] and Annotated[Literal | None]
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else ()
        inner = next((a for a in args if a is not type(None)), annotation)
        if typing.get_origin(inner) is typing.Annotated:
            metadata += list(inner.__metadata__)
            inner = typing.get_args(inner)[0]
        # a Field(...) nested inside Optional[Annotated[...]] carries its constraints in its own metadata
        metadata += [c for m in metadata if isinstance(m, FieldInfo) for c in m.metadata]
        inner_args = typing.get_args(inner) if typing.get_origin(inner) in (typing.Union, types.UnionType) else ()
        if inner_args:
            inner = next(a for a in inner_args if a is not type(None))
        codes = typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else None
        form = next((m for m in metadata if isinstance(m, SqlForm)), SqlForm())
        pattern = next((getattr(m, "pattern", None) for m in metadata if getattr(m, "pattern", None)), None)
        minimum = None
        for m in metadata:
            if isinstance(m, annotated_types.Ge):
                minimum = ("ge", m.ge)
            elif isinstance(m, annotated_types.Gt):
                minimum = ("gt", m.gt)
        forms = tuple(dict.fromkeys(tuple(date_forms) + form.dates)) if form.dates is not None else ()
        specs.append(ColumnSpec(name, info.alias or name, form, info.is_required(), codes, pattern, minimum, forms))
    return specs


def _field_checks(spec: ColumnSpec) -> list[tuple[str, str, str]]:
    """(rule, bad-predicate, message) for one column, in the order they are reported."""
    col, text = quote(spec.name), quote(spec.name + "__text")
    expected = spec.expected
    checks = []
    if spec.required:
        checks.append(("missing_value", f"{text} IS NULL", f"{spec.raw} is blank; expected {expected}"))
    if spec.form.lenient:
        return checks
    if spec.form.cast != "{x}":
        rule = _PARSE_RULE.get(spec.form.sql_type, "bad_value")
        checks.append((rule, f"{text} IS NOT NULL AND {col} IS NULL", f"{spec.raw} does not read as {expected}"))
    if spec.codes:
        codes = ", ".join(sql_string(str(c)) for c in spec.codes)
        checks.append(("bad_code", f"{col} NOT IN ({codes})", f"{spec.raw} is not a valid code; expected {expected}"))
    if spec.pattern:
        pattern = spec.pattern.removeprefix("^").removesuffix("$")
        checks.append(("bad_format", f"NOT regexp_full_match({col}, {sql_string(pattern)})",
                       f"{spec.raw} is not in the expected form; expected {expected}"))
    if spec.minimum:
        op, bound = spec.minimum
        bad = f"{col} < {bound}" if op == "ge" else f"{col} <= {bound}"
        checks.append(("out_of_range", bad, f"{spec.raw} is {'negative' if bound == 0 and op == 'ge' else 'out of range'}; expected {expected}"))
    return checks


@dataclass(frozen=True)
class CompiledChecks:
    typed: str  # SELECT over the raw table
    violations: str  # SELECT over the typed table (named `typed`) and `place_index`
    columns: list[ColumnSpec]
    # the same as `typed`, leaner to hold: `store` keeps a text column whose value is its cleaned text once,
    # and `typed_view` (format {store} with the stored table's name) gives it back under both names
    store: str = ""
    typed_view: str = ""


def compile_checks(contract: type[Contract], raw_table: str, extra_columns: list[str] = (),
                   date_forms: tuple[str, ...] = DEFAULT_DATE_FORMS) -> CompiledChecks:
    specs = column_specs(contract, date_forms)
    # two levels, so that each column's cleaned text is computed once (the cast reads it, not the raw text)
    cleaned = ["__line"] + [f"{spec.text_expr} AS {quote(spec.name + '__text')}" for spec in specs]
    cleaned += [f"NULLIF(trim({quote(c)}), '') AS {quote(c)}" for c in extra_columns]
    select, stored, aliases = ["__line"], ["__line"], []
    for spec in specs:
        text = quote(spec.name + "__text")
        select += [f"{spec.cast_expr(text)} AS {quote(spec.name)}", text]
        if spec.form.cast == "{x}" and not spec.date_forms:  # the value is its cleaned text: stored once
            stored.append(text)
            aliases.append(f"{text} AS {quote(spec.name)}")
        else:
            stored += [f"{spec.cast_expr(text)} AS {quote(spec.name)}", text]
    select += [quote(c) for c in extra_columns]
    stored += [quote(c) for c in extra_columns]
    source = f"(SELECT {', '.join(cleaned)} FROM {raw_table}) AS cleaned"
    typed = f"SELECT {', '.join(select)} FROM {source}"
    store = f"SELECT {', '.join(stored)} FROM {source}"
    typed_view = f"SELECT *{''.join(', ' + a for a in aliases)} FROM {{store}}"

    parts = []
    order = 0

    def add(column: str, rule: str, bad: str, message: str, value: str, where: str = "typed") -> None:
        nonlocal order
        order += 1
        parts.append(
            f"SELECT __line, {order} AS check_order, {sql_string(column)} AS \"column\", {sql_string(rule)} AS rule, "
            f"{sql_string(message)} AS message, CAST({value} AS VARCHAR) AS value FROM {where} WHERE {bad}"
        )

    for column in contract.identifier_columns:  # first, so that the row's reported rule says why
        add(column, "nhs_number", nhs_number_sql(quote(column + "__text")),
            f"{column} looks like a real NHS number (10 digits passing the modulus-11 check, with or without spaces "
            f"or dashes); extracts must be pseudonymised before they reach the pipeline", "'[redacted]'")
    for spec in specs:
        for rule, bad, message in _field_checks(spec):
            add(spec.raw, rule, bad, message, quote(spec.name + "__text"))
    for rule in contract.row_rules:
        value = "'[redacted]'" if rule.redact else quote(rule.column + "__text") if rule.column in contract.model_fields else "NULL"
        add(rule.column, rule.rule, f"({rule.bad})", rule.message, value)
    if contract.unique_key:
        key = ", ".join(quote(k) for k in contract.unique_key)
        same = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM d.{quote(k)}" for k in contract.unique_key)
        # every row after the first of its key: a GROUP BY finds the repeated keys (no window over every row)
        dup = (f"(SELECT t.*, d.__first FROM typed AS t JOIN (SELECT {key}, min(__line) AS __first FROM typed "
               f"GROUP BY {key} HAVING count(*) > 1) AS d ON {same}) AS ranked")
        add(contract.unique_key[-1], "duplicate_record", "__line > __first",
            f"a second row with the same {', '.join(contract.unique_key)} in this file; the first was kept",
            "concat_ws(' / ', " + ", ".join(f"CAST({quote(k)} AS VARCHAR)" for k in contract.unique_key) + ")",
            where=dup)
    for column in contract.constant_per_file:
        mode = f"(SELECT mode({quote(column)}) FROM typed)"
        add(column, f"mixed_{column}", f"{quote(column)} IS NOT NULL AND {quote(column)} <> {mode}",
            f"{column} differs from the rest of the file (one {column} per file)", quote(column + "__text"))
    if contract.place_by:
        place = contract.place_by
        unplaced = f"{place} IS NOT NULL AND {place} NOT IN (SELECT place FROM place_index)"
        postcode_like = f"NOT regexp_full_match({place}, 'E0\\d{{7}}')"
        column = place.split("(")[-1].split(",")[0] if "(" in place else place
        add(column, "unknown_postcode", f"{unplaced} AND {postcode_like}",
            "postcode is not in the postcode directory (check it, or update the directory in raw/geography)", place)
        add(column, "unknown_area", f"{unplaced} AND NOT {postcode_like}",
            "area code is not in the postcode directory's geography", place)
    return CompiledChecks(typed, "\nUNION ALL\n".join(parts), specs, store, typed_view)
