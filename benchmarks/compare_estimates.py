"""Check that a change to the estimate stage left its tables unchanged (issue 13: engineering, not methods).

    .venv/bin/python benchmarks/compare_estimates.py tables BEFORE.duckdb AFTER.duckdb [--dropped est_gp_patients]
    .venv/bin/python benchmarks/compare_estimates.py demo [--before-ref main]

``tables`` compares every ``est_*`` table and every table the stage publishes (population_estimates,
population_estimates_methods, ethnicity_estimates, population_flows) of two databases made from the
same inputs, e.g. a national benchmark's processed database before a change and a copy re-estimated
after it (benchmarks/profile_estimates.py). Two tables are equal when they have the same columns and
types and the same rows: rows are matched on their non-float columns (with the floats as tie-breaks
where those repeat) and every float must agree within 1e-9 (relative, or absolute near 0), NULL with
NULL and NaN with NaN. Tables only in BEFORE must be named with ``--dropped`` (intermediates no longer
kept); tables only in AFTER are listed (new intermediates).

``demo`` makes a small demo district (6 LSOAs, a fifth of the people, a year of quarterly extracts), ingests and
validates it, and runs the estimate stage twice on copies of its database: with the code of git ref
``--before-ref`` (checked out in a temporary worktree, run in a subprocess) and with this tree's; then
compares them as above, once with the district's movement records (mode register_movements) and once
without them (register_snapshots: flows from consecutive snapshots, as at national scale).
Exit status 0 when every table matches.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ("population_estimates", "population_estimates_methods", "ethnicity_estimates", "population_flows")
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
TOLERANCE = 1e-9


def attached_tables(con: duckdb.DuckDBPyConnection, schema: str, keep) -> dict[str, list[tuple[str, str]]]:
    """The tables of the attached database `schema` whose name passes `keep`: name -> [(column, type)]."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position", [schema]).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        if keep(table):
            tables.setdefault(table, []).append((column, dtype))
    return tables


def stage_tables(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[tuple[str, str]]]:
    """est_* and published tables of the attached database `schema`: name -> [(column, type)]."""
    return attached_tables(con, schema, lambda table: table.startswith("est_") or table in PUBLISHED)


def compare_table(con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]]) -> str | None:
    """None when before.<table> and after.<table> hold the same rows (floats within TOLERANCE), else what differs."""
    n_before, n_after = (con.execute(f'SELECT count(*) FROM {db}.main."{table}"').fetchall()[0][0]
                         for db in ("before", "after"))
    if n_before != n_after:
        return f"{n_before} rows before, {n_after} after"
    floats = [c for c, t in columns if t.upper() in FLOAT_TYPES]
    keys = [c for c, t in columns if t.upper() not in FLOAT_TYPES]
    q = lambda c: f'"{c}"'  # noqa: E731
    # rows matched on their keys, numbered within repeated keys (floats, then keys, order the repeats)
    order = ", ".join([*(q(c) for c in floats), *(q(c) for c in keys)]) or "1"
    partition = ", ".join(q(c) for c in keys)
    numbered = (f"SELECT *, row_number() OVER ({'PARTITION BY ' + partition if keys else ''} ORDER BY {order}) "
                f"AS _rn FROM {{db}}.main.\"{table}\"")
    on = " AND ".join([*(f"b.{q(c)} IS NOT DISTINCT FROM a.{q(c)}" for c in keys), "b._rn = a._rn"])
    unmatched = con.execute(
        f"SELECT count(*) FROM ({numbered.format(db='before')}) b FULL JOIN ({numbered.format(db='after')}) a ON {on} "
        "WHERE b._rn IS NULL OR a._rn IS NULL").fetchall()[0][0]
    if unmatched:
        return f"{unmatched} rows without a match on ({', '.join(keys)})"
    problems = []
    for c in floats:
        bad, worst = con.execute(
            f"SELECT count(*), max(abs(b.{q(c)} - a.{q(c)})) FROM ({numbered.format(db='before')}) b "
            f"JOIN ({numbered.format(db='after')}) a ON {on} "
            f"WHERE NOT ((b.{q(c)} IS NULL AND a.{q(c)} IS NULL) OR (isnan(b.{q(c)}) AND isnan(a.{q(c)})) "
            f"OR abs(b.{q(c)} - a.{q(c)}) <= {TOLERANCE} * greatest(1.0, abs(b.{q(c)}), abs(a.{q(c)})))").fetchall()[0]
        if bad:
            problems.append(f"{c}: {bad} values differ (largest difference {worst})")
    return "; ".join(problems) or None


def compare_databases(before: Path, after: Path, dropped: tuple[str, ...] = ()) -> list[str]:
    """Every difference between the estimate stage's tables in two databases (empty: they match)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"ATTACH '{Path(before).as_posix()}' AS before (READ_ONLY)")
    con.execute(f"ATTACH '{Path(after).as_posix()}' AS after (READ_ONLY)")
    tb, ta = stage_tables(con, "before"), stage_tables(con, "after")
    problems = []
    for table in sorted(set(tb) - set(ta)):
        if table not in dropped:
            problems.append(f"{table}: only before (not kept any more? name it with --dropped)")
        else:
            print(f"{table}: not kept any more (--dropped)")
    for table in sorted(set(ta) - set(tb)):
        print(f"{table}: new (only after)")
    for table in sorted(set(tb) & set(ta)):
        if tb[table] != ta[table]:
            problems.append(f"{table}: columns {tb[table]} before, {ta[table]} after")
            continue
        found = compare_table(con, table, tb[table])
        print(f"{table}: {'same' if found is None else found}")
        if found is not None:
            problems.append(f"{table}: {found}")
    if not set(tb) & set(ta):
        problems.append("no est_* or published table in both databases")
    con.close()
    return problems


# ------------------------------------------------------------------------------------------ demo

_RUN_ESTIMATES = """
import sys
sys.path.insert(0, sys.argv[1])
import duckdb
from pipeline.config import load_settings
from pipeline.estimates import estimate_populations
con = duckdb.connect(sys.argv[2])
estimate_populations(con, load_settings().estimates)
con.close()
"""


def estimate_with(tree: Path, db: Path) -> None:
    """Run the estimate stage of the code in `tree` on the database `db` (a subprocess: its own imports)."""
    subprocess.run([sys.executable, "-c", _RUN_ESTIMATES, str(tree), str(db)], check=True, cwd=tree)


@contextlib.contextmanager
def work_folder_with(ref: str, prefix: str):
    """A temporary folder holding a detached worktree of git ref `ref` in `before/`; removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        subprocess.run(["git", "worktree", "add", "--detach", str(work / "before"), ref], cwd=ROOT, check=True,
                       capture_output=True)
        yield work
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(work / "before")], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def make_small_demo(data: Path):
    """The small demo district both comparisons run on (6 LSOAs, a fifth of the people, a year of quarterly extracts);
    returns its settings."""
    from pipeline.config import load_settings
    from pipeline.demo import generate_district

    settings = load_settings(data_dir=data, demo={"n_lsoas": 6, "scale": 0.2, "quarters": 4, "survey_size": 150})
    generate_district(settings.demo, data)
    return settings


def finish(problems: list[str], matched: str) -> None:
    """Print what differs and exit 1, or print `matched`."""
    if problems:
        print("DIFFERENT:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(matched)


def compare_on_demo(before_ref: str, dropped: tuple[str, ...]) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from pipeline.run import run_pipeline

    problems: list[str] = []
    with work_folder_with(before_ref, "compare-estimates-") as work:
        old_tree = work / "before"
        data = work / "data"
        settings = make_small_demo(data)
        run_pipeline(settings, "validate")
        for variant in ("register_movements", "register_snapshots"):
            dbs = {side: work / f"{variant}-{side}.duckdb" for side in ("before", "after")}
            for side, db in dbs.items():
                shutil.copy(data / "processed" / "cohesion.duckdb", db)
                if variant == "register_snapshots":
                    con = duckdb.connect(str(db))
                    con.execute("DELETE FROM gp_movements")
                    con.close()
                estimate_with(old_tree if side == "before" else ROOT, db)
            print(f"--- {variant}: {before_ref} against this tree")
            problems += [f"{variant}: {p}" for p in compare_databases(dbs["before"], dbs["after"], dropped)]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tables = sub.add_parser("tables", help="compare two databases")
    tables.add_argument("before", type=Path)
    tables.add_argument("after", type=Path)
    demo = sub.add_parser("demo", help="before/after on a small demo district")
    demo.add_argument("--before-ref", default="main")
    for p in (tables, demo):
        p.add_argument("--dropped", nargs="*", default=["est_gp_patients"],
                       help="tables the change no longer keeps (default: est_gp_patients, now a view)")
    args = parser.parse_args()
    if args.command == "tables":
        problems = compare_databases(args.before, args.after, tuple(args.dropped))
    else:
        problems = compare_on_demo(args.before_ref, tuple(args.dropped))
    finish(problems, "every est_* and published table matches")


if __name__ == "__main__":
    main()
