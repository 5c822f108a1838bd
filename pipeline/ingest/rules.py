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

import dataclasses
import types
import typing
from dataclasses import dataclass

import annotated_types
from pydantic.fields import FieldInfo

from schemas.types import DEFAULT_DATE_FORMS, Contract, SqlForm, date_examples, date_sql, iso_fast_path, nhs_number_sql

_PARSE_RULE = {"DATE": "bad_date", "BIGINT": "bad_number", "DOUBLE": "bad_number", "INTEGER": "bad_number",
               "BOOLEAN": "bad_code"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trimmed_sql(column: str, plain: str | None = None) -> str:
    """``NULLIF(trim(column), '')``: the text without surrounding spaces, NULL when blank.

    trim() is one of the costlier steps over a 10-million-row file, and most values need none: it
    only runs on values that start or end with a space or hold a non-ASCII character (trim also
    removes Unicode spaces, such as the no-break space; strlen counts bytes, length characters).
    `plain`: a boolean column of the row, true when none of its values starts or ends with a space or
    holds a non-ASCII character (found once per CSV line by the reader: `reader.PLAIN`); those values
    skip the test."""
    test = f"starts_with({column}, ' ') OR ends_with({column}, ' ') OR strlen({column}) <> length({column})"
    when = f"WHEN {plain} THEN NULLIF({column}, '') " if plain else ""
    return f"CASE {when}WHEN {test} THEN NULLIF(trim({column}), '') ELSE NULLIF({column}, '') END"


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
    def prepared_name(self) -> str:
        return self.name + "__prepared"

    def prepared_expr(self, plain: str | None = None) -> str:
        """The trimmed raw text (NULL when blank), put through the form's `prepare` step (computed once);
        `plain` as for `trimmed_sql`."""
        return "(" + self.form.prepare.replace("{x}", trimmed_sql(quote(self.raw), plain)) + ")"

    def clean_expr(self, prepared: str) -> str:
        """The column's cleaned text, read from its prepared text `prepared`."""
        return "(" + self.form.clean.replace("{x}", prepared) + ")"

    @property
    def text_expr(self) -> str:
        return self.clean_expr(self.prepared_expr())

    @property
    def typed_expr(self) -> str:
        return self.cast_expr(self.text_expr)

    def cast_expr(self, text: str) -> str:
        """The typed value read from `text`, the column's cleaned text (NULL when it does not parse)."""
        cast = self.form.cast.replace("{date}", date_sql("{x}", self.date_forms)) if self.date_forms else self.form.cast
        return "(" + cast.replace("{x}", text) + ")"

    @property
    def fast_expr(self) -> str | None:
        """A date column that accepts ISO dates: its cheap reading of ISO text (`schemas.types.iso_fast_path`)."""
        return iso_fast_path(quote(self.name + "__text"), self.date_forms) if self.date_forms else None

    @property
    def sparse_text(self) -> bool:
        """The typed rows keep this column's text only where its typed value does not give it back
        (``form.rebuild``): dates read by the ISO fast path, Y/N."""
        return bool(self.form.rebuild) and (self.fast_expr is not None or not self.date_forms)

    def text_value(self, table: str = "") -> str:
        """SQL for the column's cleaned text in the typed rows (rebuilt where it is not kept)."""
        text, typed = table + quote(self.name + "__text"), table + quote(self.name)
        if not self.sparse_text:
            return text
        return f"coalesce({text}, {self.form.rebuild.replace('{v}', typed)})"

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
    if spec.required:  # a sparse text is NULL where the typed value gives it back: blank only without one
        missing = f"{text} IS NULL AND {col} IS NULL" if spec.sparse_text else f"{text} IS NULL"
        checks.append(("missing_value", missing, f"{spec.raw} is blank; expected {expected}"))
    if spec.form.lenient:
        return checks
    if spec.form.cast != "{x}":
        rule = _PARSE_RULE.get(spec.form.sql_type, "bad_value")
        checks.append((rule, f"{text} IS NOT NULL AND {col} IS NULL", f"{spec.raw} does not read as {expected}"))
    if spec.codes:
        checks.append(("bad_code", _not_a_code(col, spec.codes), f"{spec.raw} is not a valid code; expected {expected}"))
    if spec.pattern:
        pattern = spec.pattern.removeprefix("^").removesuffix("$")
        globs = glob_forms(pattern)
        matches = (" OR ".join(f"{col} GLOB {sql_string(g)}" for g in globs) if globs
                   else f"regexp_full_match({col}, {sql_string(pattern)})")
        checks.append(("bad_format", f"NOT ({matches})",
                       f"{spec.raw} is not in the expected form; expected {expected}"))
    if spec.minimum:
        op, bound = spec.minimum
        bad = f"{col} < {bound}" if op == "ge" else f"{col} <= {bound}"
        checks.append(("out_of_range", bad, f"{spec.raw} is {'negative' if bound == 0 and op == 'ge' else 'out of range'}; expected {expected}"))
    return checks


def _not_a_code(col: str, codes: tuple) -> str:
    """SQL true when `col` is not one of `codes`. Codes of one letter or digit each (NHS ethnic categories, sex) are
    one GLOB class, which matches exactly the values the IN list holds (NULL stays NULL): over a 10-million-row
    extract about a tenth of the CPU of an IN list of 17 values."""
    if codes and all(isinstance(c, str) and len(c) == 1 and c.isascii() and c.isalnum() for c in codes):
        return f"NOT ({col} GLOB '[{''.join(dict.fromkeys(codes))}]')"
    return f"{col} NOT IN ({', '.join(sql_string(str(c)) for c in codes)})"


_GLOB_LITERAL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +-_")


def glob_forms(pattern: str, limit: int = 16) -> list[str] | None:
    """A whole-value regular expression as a few GLOB patterns that match exactly the same values, or
    None when it has no such form.

    GLOB with fixed character classes is about ten times cheaper than a regular expression over a
    10-million-row file (M85001 against ``[A-Z]\\d{5}``). Only what translates exactly is taken:
    alternatives (``a|b``, or one group of them around the whole), literal letters, digits, spaces and
    ``+ - _``, ``\\d`` and positive classes of ASCII letters and digits (one byte each: a character
    beyond ASCII fails both forms), each repeated ``?``, ``{m}`` or ``{m,n}``, expanded into at most
    `limit` patterns. Anything else (``*``, ``+``, negated classes, nested groups) keeps the regular
    expression.
    """
    if pattern.startswith("(") and pattern.endswith(")") and pattern.count("(") == 1 and pattern.count(")") == 1:
        pattern = pattern[1:-1]
    if "(" in pattern or ")" in pattern:
        return None
    forms: list[str] = []
    for alternative in pattern.split("|"):
        tokens: list[tuple[str, int, int]] = []  # (glob of one character, fewest, most)
        i = 0
        while i < len(alternative):
            c = alternative[i]
            if alternative.startswith("\\d", i):
                one, i = "[0-9]", i + 2
            elif c == "\\" and i + 1 < len(alternative) and alternative[i + 1] in "+-":
                one, i = alternative[i + 1], i + 2
            elif c == "[":
                end = alternative.find("]", i)
                body = alternative[i + 1:end].replace("\\d", "0-9") if end > 0 else ""
                if not body or body.startswith("^") or any(ch not in _GLOB_LITERAL - set(" +_") for ch in body):
                    return None
                if body.startswith("-") or body.endswith("-"):
                    return None
                one, i = f"[{body}]", end + 1
            elif c in _GLOB_LITERAL and c != "+":  # an unescaped + repeats what comes before it
                one, i = c, i + 1
            else:
                return None
            low = high = 1
            if alternative.startswith("?", i):
                low, i = 0, i + 1
            elif alternative.startswith("{", i):
                end = alternative.find("}", i)
                bounds = alternative[i + 1:end].split(",") if end > 0 else []
                if not bounds or len(bounds) > 2 or not all(b.isdigit() for b in bounds):
                    return None
                low, high = int(bounds[0]), int(bounds[-1])
                i = end + 1
            tokens.append((one, low, high))
        expanded = [""]
        for one, low, high in tokens:
            expanded = [e + one * n for e in expanded for n in range(low, high + 1)]
            if len(forms) + len(expanded) > limit:
                return None
        forms += expanded
    return list(dict.fromkeys(forms)) or None


@dataclass(frozen=True)
class CompiledChecks:
    typed: str  # SELECT over the raw table
    violations: str  # SELECT over the typed table (named `typed`) and `place_index`
    columns: list[ColumnSpec]
    # the same as `typed`, leaner to hold: `store` keeps a text column whose value is its cleaned text once,
    # and `typed_view` (format {store} with the stored table's name) gives it back under both names; a
    # column whose typed value gives its text back (`ColumnSpec.sparse_text`: ISO dates, Y/N) keeps its
    # `<col>__text` only where it does not (NULL elsewhere; `ColumnSpec.text_value` rebuilds it)
    store: str = ""
    typed_view: str = ""
    # a contract with a unique key: a query over `typed` that is true when no key repeats (the usual case, found
    # by counting the keys' distinct hashes), and the violations without the join that finds the repeats
    keys_unique: str = ""
    violations_keys_unique: str = ""


def compile_checks(contract: type[Contract], raw_table: str, extra_columns: list[str] = (),
                   date_forms: tuple[str, ...] = DEFAULT_DATE_FORMS, carry: tuple[str, ...] = (),
                   plain: str | None = None) -> CompiledChecks:
    """`carry`: columns of the raw table passed through to the typed rows as they are (the reader's
    `__problem`); the typed view leaves them out. `plain`: a boolean column of the raw table, true on rows
    whose values need no trimming (`trimmed_sql`; the reader's `__plain`), read only by the first step."""
    specs = column_specs(contract, date_forms)
    through = [quote(c) for c in carry]
    # three levels, so that each step is computed once per row: the prepared text (trimmed; a costly
    # step of the cleaning, such as removing a postcode's spaces), the cleaned text, and the cast
    # (which reads the cleaned text, not the raw text)
    flag = quote(plain) if plain else None
    prepared = ["__line", *through] + [f"{spec.prepared_expr(flag)} AS {quote(spec.prepared_name)}" for spec in specs]
    prepared += [f"{trimmed_sql(quote(c), flag)} AS {quote(c)}" for c in extra_columns]
    cleaned = ["__line", *through] + [f"{spec.clean_expr(quote(spec.prepared_name))} AS {quote(spec.name + '__text')}"
                            for spec in specs]
    cleaned += [quote(c) for c in extra_columns]
    select, stored, aliases = ["__line", *through], ["__line", *through], []
    # a fourth level for dates read by the ISO fast path: the cheap reading, which the store keeps where
    # it gives back the text exactly (then the text itself is not kept: `ColumnSpec.sparse_text`)
    quick = ["__line", *through] + [quote(spec.name + "__text") for spec in specs]
    quick += [f"{spec.fast_expr} AS {quote(spec.name + '__iso')}" for spec in specs if spec.fast_expr]
    quick += [quote(c) for c in extra_columns]
    for spec in specs:
        text = quote(spec.name + "__text")
        select += [f"{spec.cast_expr(text)} AS {quote(spec.name)}", text]
        if spec.form.cast == "{x}" and not spec.date_forms:  # the value is its cleaned text: stored once
            stored.append(text)
            aliases.append(f"{text} AS {quote(spec.name)}")
        elif spec.fast_expr:
            iso = quote(spec.name + "__iso")
            same = f"(length({text}) = 10 AND CAST({iso} AS VARCHAR) = {text})"
            stored += [f"CASE WHEN {same} THEN {iso} ELSE {spec.cast_expr(text)} END AS {quote(spec.name)}",
                       f"CASE WHEN {same} THEN NULL ELSE {text} END AS {text}" if spec.sparse_text else text]
        elif spec.sparse_text:
            typed_value = spec.cast_expr(text)
            back = spec.form.rebuild.replace("{v}", typed_value)
            stored += [f"{typed_value} AS {quote(spec.name)}",
                       f"CASE WHEN {typed_value} IS NOT NULL AND {back} = {text} THEN NULL ELSE {text} END AS {text}"]
        else:
            stored += [f"{spec.cast_expr(text)} AS {quote(spec.name)}", text]
    select += [quote(c) for c in extra_columns]
    stored += [quote(c) for c in extra_columns]
    source = f"(SELECT {', '.join(cleaned)} FROM (SELECT {', '.join(prepared)} FROM {raw_table}) AS prepared) AS cleaned"
    typed = f"SELECT {', '.join(select)} FROM {source}"
    store = f"SELECT {', '.join(stored)} FROM (SELECT {', '.join(quick)} FROM {source}) AS quick"
    everything = f"* EXCLUDE ({', '.join(through)})" if through else "*"
    typed_view = f"SELECT {everything}{''.join(', ' + a for a in aliases)} FROM {{store}}"

    checks: list[tuple[str, str, str, str, str]] = []  # (column, rule, bad predicate, message, value), in report order
    joins: list[str] = []  # what the predicates read beside the typed row, joined once
    extra: list[str] = []  # their columns

    def add(column: str, rule: str, bad: str, message: str, value: str) -> None:
        checks.append((column, rule, bad, message, value))

    for column in contract.identifier_columns:  # first, so that the row's reported rule says why
        add(column, "nhs_number", nhs_number_sql(quote(column + "__text")),
            f"{column} looks like a real NHS number (10 digits passing the modulus-11 check, with or without spaces "
            f"or dashes); extracts must be pseudonymised before they reach the pipeline", "'[redacted]'")
    by_name = {spec.name: spec for spec in specs}

    def text_of(column: str) -> str:
        return by_name[column].text_value() if column in by_name else quote(column + "__text")

    for spec in specs:
        for rule, bad, message in _field_checks(spec):
            add(spec.raw, rule, bad, message, spec.text_value())
    for rule in contract.row_rules:
        value = "'[redacted]'" if rule.redact else text_of(rule.column) if rule.column in contract.model_fields else "NULL"
        add(rule.column, rule.rule, f"({rule.bad})", rule.message, value)
    if contract.unique_key:
        key = ", ".join(quote(k) for k in contract.unique_key)
        same = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM d.{quote(k)}" for k in contract.unique_key)
        # every row after the first of its key. The repeated keys are found by grouping a 64-bit hash of
        # the key (far cheaper than grouping the key's text), then grouping the exact key only among the
        # rows whose hash repeats (a hash collision is then told apart by the key itself)
        repeats_join = (f"LEFT JOIN (SELECT {key}, min(__line) AS __first FROM typed "
                        f"WHERE hash({key}) IN (SELECT hash({key}) AS __h FROM typed GROUP BY __h HAVING count(*) > 1) "
                        f"GROUP BY {key} HAVING count(*) > 1) AS d ON {same}")
        joins.append(repeats_join)
        extra.append("d.__first")
        # all the keys' hashes differ (equal keys have equal hashes): no key repeats, and the join is not needed.
        # Found by sorting the hashes and comparing each with the one before: cheaper than counting the distinct
        # hashes, which holds every one in a hash table (10 million keys: 1.5-1.6 CPU-s against 2.7-2.8)
        keys_unique = (f"SELECT count(*) FILTER (WHERE __h = __before) = 0 FROM "
                       f"(SELECT __h, lag(__h) OVER (ORDER BY __h) AS __before FROM (SELECT hash({key}) AS __h FROM typed))")
        add(contract.unique_key[-1], "duplicate_record", "__line > __first",
            f"a second row with the same {', '.join(contract.unique_key)} in this file; the first was kept",
            "concat_ws(' / ', " + ", ".join(f"CAST({quote(k)} AS VARCHAR)" for k in contract.unique_key) + ")")
    for i, column in enumerate(contract.constant_per_file):
        joins.append(f"CROSS JOIN (SELECT mode({quote(column)}) AS __mode_{i} FROM typed) AS m{i}")
        extra.append(f"m{i}.__mode_{i}")
        add(column, f"mixed_{column}", f"{quote(column)} IS NOT NULL AND {quote(column)} <> __mode_{i}",
            f"{column} differs from the rest of the file (one {column} per file)", text_of(column))
    if contract.place_by:
        place = contract.place_by
        extra.append(f"({_qualified(place)} IS NOT NULL AND {_qualified(place)} NOT IN (SELECT place FROM place_index)) "
                     "AS __unplaced")
        postcode_like = f"NOT regexp_full_match({place}, 'E0\\d{{7}}')"
        column = place.split("(")[-1].split(",")[0] if "(" in place else place
        add(column, "unknown_postcode", f"__unplaced AND {postcode_like}",
            "postcode is not in the postcode directory (check it, or update the directory in raw/geography)", place)
        add(column, "unknown_area", f"__unplaced AND NOT {postcode_like}",
            "area code is not in the postcode directory's geography", place)
    # one pass over the rows: each row's first broken rule (in report order) and how many it breaks;
    # the messages and values are built for the broken rows only
    def violations_over(joined: list[str], columns: list[str]) -> str:
        base = f"SELECT t.*{''.join(', ' + e for e in columns)} FROM typed AS t {' '.join(joined)}"
        first = "CASE " + " ".join(f"WHEN {bad} THEN {k}" for k, (_, _, bad, _, _) in enumerate(checks, 1)) + " END"
        def pick(values: list[str]) -> str:
            return "CASE __check " + " ".join(f"WHEN {k} THEN {v}" for k, v in enumerate(values, 1)) + " END"
        any_bad = " OR ".join(f"({bad})" for _, _, bad, _, _ in checks)  # a filter first: the CASE reads the bad rows only
        count = " + ".join(f"CAST(coalesce({bad}, false) AS INTEGER)" for _, _, bad, _, _ in checks)
        violations = (
            f"SELECT __line, __check AS check_order, {pick([sql_string(c[0]) for c in checks])} AS \"column\", "
            f"{pick([sql_string(c[1]) for c in checks])} AS rule, {pick([sql_string(c[3]) for c in checks])} AS message, "
            f"{pick([f'CAST({c[4]} AS VARCHAR)' for c in checks])} AS value, {count} AS problems "
            f"FROM (SELECT *, {first} AS __check FROM ({base}) AS base WHERE {any_bad}) AS flagged"
        ) if checks else ("SELECT __line, 0 AS check_order, '' AS \"column\", '' AS rule, '' AS message, "
                          "CAST(NULL AS VARCHAR) AS value, 0 AS problems FROM typed WHERE false")
        return violations

    compiled = CompiledChecks(typed, violations_over(joins, extra), specs, store, typed_view)
    if not contract.unique_key:
        return compiled
    unique = violations_over([j for j in joins if j != repeats_join],
                             ["CAST(NULL AS BIGINT) AS __first" if e == "d.__first" else e for e in extra])
    return dataclasses.replace(compiled, keys_unique=keys_unique, violations_keys_unique=unique)


def _qualified(expression: str) -> str:
    """Prefix the typed table's alias `t` to the column names of a place expression."""
    import re

    return re.sub(r"\b(?!coalesce\b)([a-z_]+)\b", r"t.\1", expression)
