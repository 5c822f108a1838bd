"""Check that the indicator stage gives the same tables as an earlier commit (issue 13).

    .venv/bin/python benchmarks/check_indicators_unchanged.py DATA_DIR --before REF [--after REF] [--markdown FILE]

DATA_DIR is a data folder on which `cohesion estimates` (or later) has run: its
processed/cohesion.duckdb holds the tables the indicator stage reads. The database is copied twice;
on one copy the indicator stages (every registered stage whose target is ``indicators``: PSA 21, the
local basket) run with the code of commit REF (exported with `git archive` into a temporary folder
and run from there in a subprocess, its own config.toml included), on the other with the code of
--after (default: this working tree). Then every table the stages created or replaced on either
copy is compared: the same columns and types, the same rows (as sorted multisets), numbers equal
to 1e-9 (relative or absolute). Exit 0 when all agree; otherwise each difference is listed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-9

RUN_STAGES = """
import sys, time, duckdb
from pathlib import Path
import pipeline
from pipeline.config import load_settings
from pipeline.stages import StageContext, registered_stages
data, db = Path(sys.argv[1]), sys.argv[2]
settings = load_settings(data_dir=data)
print(f"code: {Path(pipeline.__file__).parent.parent}", flush=True)
con = duckdb.connect(db)
out = Path(db).with_suffix(".out")
out.mkdir(exist_ok=True)
report = {}
for stage in registered_stages():
    if stage.target_name == "indicators":
        started = time.perf_counter()
        report.update(stage.run(StageContext(con=con, settings=settings, out_dir=out, report=report)) or {})
        print(f"{stage.name}: {time.perf_counter() - started:.1f} s", flush=True)
con.close()
"""


def export_commit(ref: str, into: Path) -> Path:
    """The tree of commit `ref` in a folder (git archive: tracked files only)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_indicator_stages(code: Path, data: Path, db: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", RUN_STAGES, str(data), str(db)], cwd=code,
                          env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"the indicator stages failed with the code in {code}:\n{proc.stderr[-3000:]}")
    print(f"  {code}: {proc.stdout.strip()}", flush=True)


def table_fingerprints(db: Path) -> dict[str, tuple]:
    """Each table's columns, types and row count, and a hash of its content (to find what a stage changed)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]
        out = {}
        for table in tables:
            columns = con.execute(f'DESCRIBE "{table}"').fetchall()
            digest = con.execute(f'SELECT count(*), sum(CAST(hash(t) AS HUGEINT)) FROM "{table}" AS t').fetchall()[0]
            out[table] = (tuple((c[0], c[1]) for c in columns), digest)
        return out
    finally:
        con.close()


def _key(row: tuple) -> tuple:
    return tuple((v is None, type(v).__name__, round(v, 6) if isinstance(v, float) and math.isfinite(v) else
                  (str(v) if isinstance(v, float) else v)) for v in row)


def compare_table(table: str, a: Path, b: Path) -> list[str]:
    """Differences between `table` in databases a and b (empty when equal to TOLERANCE)."""
    rows = {}
    types = {}
    for side, db in (("before", a), ("after", b)):
        con = duckdb.connect(str(db), read_only=True)
        try:
            types[side] = con.execute(f'DESCRIBE "{table}"').fetchall()
            rows[side] = sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(), key=_key)
        finally:
            con.close()
    columns = [(c[0], c[1]) for c in types["before"]]
    if columns != [(c[0], c[1]) for c in types["after"]]:
        return [f"{table}: columns differ: before {columns}, after {[(c[0], c[1]) for c in types['after']]}"]
    if len(rows["before"]) != len(rows["after"]):
        return [f"{table}: {len(rows['before'])} rows before, {len(rows['after'])} after"]
    problems = []
    for i, (ra, rb) in enumerate(zip(rows["before"], rows["after"])):
        for (name, _), va, vb in zip(columns, ra, rb):
            if isinstance(va, float) and isinstance(vb, float):
                same = (math.isnan(va) and math.isnan(vb)) or va == vb or math.isclose(
                    va, vb, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
            else:
                same = va == vb
            if not same:
                problems.append(f"{table} row {i} column {name}: before {va!r}, after {vb!r}")
                if len(problems) >= 10:
                    return problems
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a data folder on which `cohesion estimates` has run")
    parser.add_argument("--before", required=True, help="the commit whose outputs are the reference")
    parser.add_argument("--after", default=None, help="a commit to compare with it (default: this working tree)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the summary to this file")
    args = parser.parse_args()
    source = args.data.resolve() / "processed" / "cohesion.duckdb"
    if not source.is_file():
        parser.error(f"{source} does not exist: run `cohesion estimates --data-dir {args.data}` first")
    work = Path(tempfile.mkdtemp(prefix="indicators-unchanged-"))
    try:
        sha = lambda ref: subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True,
                                         check=True).stdout.strip()
        before_code = export_commit(args.before, work / "before-code")
        after_code = export_commit(args.after, work / "after-code") if args.after else ROOT
        original = table_fingerprints(source)
        made = {}
        for side, code in (("before", before_code), ("after", after_code)):
            db = work / f"{side}.duckdb"
            shutil.copyfile(source, db)
            started = time.perf_counter()
            run_indicator_stages(code, args.data.resolve(), db)
            print(f"{side}: indicator stages ran in {time.perf_counter() - started:.1f} s", flush=True)
            made[side] = {t: f for t, f in table_fingerprints(db).items() if original.get(t) != f}
        only = {side: sorted(set(made[side]) - set(made[other])) for side, other in (("before", "after"), ("after", "before"))}
        tables = sorted(set(made["before"]) & set(made["after"]))
        problems = []
        for table in tables:
            problems += compare_table(table, work / "before.duckdb", work / "after.duckdb")
        lines = [f"# Indicator stage: the same tables before and after",
                 "",
                 f"`benchmarks/check_indicators_unchanged.py {args.data} --before {args.before}"
                 + (f" --after {args.after}" if args.after else "") + "`",
                 "",
                 f"- before: {sha(args.before)}",
                 f"- after: {sha(args.after) if args.after else 'working tree at ' + sha('HEAD')}",
                 f"- tables the indicator stages created, compared (rows as sorted multisets, numbers to "
                 f"{TOLERANCE:g}): {len(tables)}",
                 ""]
        lines += [f"  - `{t}`: {made['after'][t][1][0]:,} rows, {len(made['after'][t][0])} columns" for t in tables]
        for side in ("before", "after"):
            if only[side]:
                lines.append(f"- made only {side}: {', '.join(f'`{t}`' for t in only[side])}")
        lines += ["", f"**{'Equal' if not problems else 'DIFFERENT'}**" + ("" if not problems else ":")]
        lines += [f"- {p}" for p in problems]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        sys.exit(1 if problems else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
