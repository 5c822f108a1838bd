"""Checks on every published table before anything leaves: the contracts of `schemas.published`.

    check_published_tables(con, ["population_estimates"])

raises `PublishedTableError` naming the table, the rule and an example when a published table
breaks its contract. Tables without a contract are only checked to exist. The checks are SQL,
so they cost one scan each on tables of any size.
"""

from __future__ import annotations

import duckdb

from schemas.published import PUBLISHED_TABLES, PublishedTable

TOLERANCE = 1e-6  # relative, for 'All' = sum of parts (plus half a person absolute)


class PublishedTableError(Exception):
    """A published table breaks its contract: the run fails rather than publish it."""


def check_published_tables(con: duckdb.DuckDBPyConnection, tables) -> None:
    problems = []
    for table in tables:
        if table in PUBLISHED_TABLES:
            problems += find_contract_breaches(con, PUBLISHED_TABLES[table])
    if problems:
        raise PublishedTableError("published tables break their contract (schemas/published.py): "
                                  + "; ".join(problems))


def find_contract_breaches(con: duckdb.DuckDBPyConnection, contract: PublishedTable) -> list[str]:
    """Every rule of `contract` the table breaks, as 'table: rule: example'."""
    t = contract.name
    columns = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [t]).fetchall()]
    if list(columns[: len(contract.columns)]) != list(contract.columns):
        missing = [c for c in contract.columns if c not in columns]
        return [f"{t}: columns must start {', '.join(contract.columns)}"
                + (f" (missing {', '.join(missing)})" if missing else f" (found {', '.join(columns)})")]
    keys = ", ".join(contract.keys)
    queries = {
        "unique key": f"SELECT {keys}, count(*) AS n FROM {t} GROUP BY {keys} HAVING count(*) > 1",
    }
    if contract.complete_over:
        dims = contract.complete_over
        expected = " * ".join(f"count(DISTINCT {d})" for d in dims)
        queries["every combination present"] = (
            f"SELECT n_rows, n_expected FROM (SELECT count(*) AS n_rows, {expected} AS n_expected FROM {t}) c "
            f"WHERE n_rows <> n_expected")
    for column in contract.non_negative:
        queries[f"{column} not negative"] = f"SELECT {keys}, {column} FROM {t} WHERE {column} < 0"
    for lower, value, upper in contract.intervals:
        queries[f"{lower} <= {value} <= {upper}"] = (
            f"SELECT {keys}, {lower}, {value}, {upper} FROM {t} "
            f"WHERE {lower} > {value} + 1e-9 OR {value} > {upper} + 1e-9")
    for dimension, measure in contract.sums_to_all:
        others = [k for k in contract.keys if k != dimension]
        group = ", ".join(others)
        queries[f"'All' {dimension} = sum of the parts ({measure})"] = f"""
            SELECT {group}, total, parts FROM (
                SELECT {group},
                       sum(CASE WHEN {dimension} = 'All' THEN {measure} END) AS total,
                       sum(CASE WHEN {dimension} <> 'All' THEN {measure} END) AS parts
                FROM {t} GROUP BY {group}) s
            WHERE total IS NOT NULL AND parts IS NOT NULL
              AND abs(total - parts) > 0.5 + {TOLERANCE} * abs(total)"""
    for column, allowed in contract.allowed.items():
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in allowed)
        queries[f"{column} in ({', '.join(allowed)})"] = (
            f"SELECT {keys}, {column} FROM {t} WHERE {column} IS NOT NULL AND {column} NOT IN ({listed})")
    problems = []
    for rule, sql in queries.items():
        cursor = con.execute(f"SELECT * FROM ({sql}) q LIMIT 1")
        example = cursor.fetchall()
        if example:
            names = [d[0] for d in cursor.description]
            shown = ", ".join(f"{n}={v}" for n, v in zip(names, example[0]))
            problems.append(f"{t}: {rule} fails, e.g. {shown}")
    return problems
