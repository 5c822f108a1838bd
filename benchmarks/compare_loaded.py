"""Check that a change to ingest or validation left what they produce unchanged (issue 13: engineering, not methods).

    .venv/bin/python benchmarks/compare_loaded.py [--before-ref main] [--raw RAW_DIR]

Runs `cohesion validate` (ingest, then validation) twice on copies of one raw folder: with the code of git ref
``--before-ref`` (checked out in a temporary worktree, run in a subprocess) and with this tree's. Without
``--raw`` the raw folder is a small demo district (6 LSOAs, a fifth of the people, a year of quarterly
extracts) with one more register extract of planted faults (`add_faulty_extract`). Then compares:

- every canonical table (`pipeline.ingest.stage.CANONICAL_TABLES`): the same columns and types and the same rows
  (`compare_estimates.compare_table`: every column, floats within 1e-9);
- every quarantine file (processed/quarantine/*.csv), byte for byte;
- validation's results (validation_results.json), expectation by expectation;
- each file's report in run_report.json (fields this tree adds are listed, not compared).

Exit status 0 when everything matches.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_estimates import attached_tables, compare_table, finish, make_small_demo, work_folder_with  # noqa: E402

_RUN_VALIDATE = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from pipeline.config import load_settings
from pipeline.run import run_pipeline
run_pipeline(load_settings(data_dir=Path(sys.argv[2])), "validate", reuse=False)
"""


def validate_with(tree: Path, data: Path) -> None:
    """`cohesion validate` with the code in `tree` on the data folder `data` (a subprocess: its own imports).

    Run as a script file, not `python -c`: pyspark (imported by great-expectations) takes a main module without a
    file for a doctest run and exits the process, without an error, when its Spark Connect extras are missing."""
    script = data.parent / "run_validate.py"
    script.write_text(_RUN_VALIDATE)
    subprocess.run([sys.executable, str(script), str(tree), str(data)], check=True, cwd=tree)


def loaded_tables(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[tuple[str, str]]]:
    from pipeline.ingest.stage import CANONICAL_TABLES

    return attached_tables(con, schema, lambda table: table in CANONICAL_TABLES)


def compare_outputs(before: Path, after: Path) -> list[str]:
    """Every difference between two processed/ folders made from the same raw folder (empty: they match)."""
    problems = []
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"ATTACH '{(before / 'cohesion.duckdb').as_posix()}' AS before (READ_ONLY)")
    con.execute(f"ATTACH '{(after / 'cohesion.duckdb').as_posix()}' AS after (READ_ONLY)")
    tb, ta = loaded_tables(con, "before"), loaded_tables(con, "after")
    if set(tb) != set(ta):
        problems.append(f"tables only before: {sorted(set(tb) - set(ta))}, only after: {sorted(set(ta) - set(tb))}")
    for table in sorted(set(tb) & set(ta)):
        if tb[table] != ta[table]:
            problems.append(f"{table}: columns {tb[table]} before, {ta[table]} after")
            continue
        found = compare_table(con, table, tb[table])
        rows = con.execute(f'SELECT count(*) FROM after.main."{table}"').fetchall()[0][0]
        print(f"{table}: {rows} rows, {'same' if found is None else found}")
        if found is not None:
            problems.append(f"{table}: {found}")
    con.close()
    quarantine = sorted(p.name for p in (before / "quarantine").glob("*.csv"))
    if quarantine != sorted(p.name for p in (after / "quarantine").glob("*.csv")):
        problems.append("not the same quarantine files")
    for name in quarantine:
        same = (before / "quarantine" / name).read_bytes() == (after / "quarantine" / name).read_bytes()
        lines = len((after / "quarantine" / name).read_text(encoding="utf-8").splitlines()) - 1
        print(f"quarantine/{name}: {lines} rows, {'same' if same else 'DIFFERENT'}")
        if not same:
            problems.append(f"quarantine/{name} differs")
    results = [json.loads((folder / "validation_results.json").read_text()) for folder in (before, after)]
    print(f"validation_results.json: {len(results[1])} results, {'same' if results[0] == results[1] else 'DIFFERENT'}")
    if results[0] != results[1]:
        problems.append("validation results differ")
    reports = [json.loads((folder / "run_report.json").read_text())["files"] for folder in (before, after)]
    added = sorted(set().union(*(f.keys() for f in reports[1])) - set().union(*(f.keys() for f in reports[0])))
    trimmed = [{k: v for k, v in f.items() if k not in added} for f in reports[1]]
    print(f"run_report.json files: {'same' if trimmed == reports[0] else 'DIFFERENT'} (fields added: {added})")
    if trimmed != reports[0]:
        problems.append("file reports differ")
    return problems


def add_faulty_extract(raw: Path) -> None:
    """A register extract of the first one's first 400 patients under an earlier date, with faults planted: padded,
    quoted and non-ASCII fields, repeated patients, bad and partial dates, NHS numbers, short, long and blank lines."""
    first = sorted((raw / "gp_register").glob("*.csv"))[0]
    header, *lines = first.read_text(encoding="utf-8").splitlines()[:401]
    date = lines[0].split(",")[0]
    earlier = f"{int(date[:4]) - 1}{date[4:]}"
    faults = [
        lambda f: [" " + f[0], *f[1:]],  # a space at the start of the line
        lambda f: [*f[:-1], f[-1] + " "],  # and at the end
        lambda f: [f[0], f" {f[1]} ", *f[2:]],  # beside commas
        lambda f: [*f[:4], "\u00a0" + f[4], *f[5:]],  # a no-break space
        lambda f: [*f[:3], f'" {f[3]} "', *f[4:]],  # a quoted postcode with spaces inside
        lambda f: [*f[:5], "2099-01-01", *f[6:]],  # born after the extract
        lambda f: [*f[:5], "1990-13-01", *f[6:]],  # impossible date
        lambda f: [*f[:5], f[5][:7], *f[6:]],  # YYYY-MM date of birth
        lambda f: [f[0], "943 476 5919", *f[2:]],  # an NHS number
        lambda f: f[:4],  # short
        lambda f: [*f, "extra"],  # long
        lambda f: [*f[:2], "Zoë", *f[3:]],  # bad practice code, non-ASCII
    ]
    out = [header]
    for i, line in enumerate(lines):
        fields = [earlier, *line.split(",")[1:]]
        out.append(",".join(faults[i % 13](fields)) if i % 13 < len(faults) else ",".join(fields))
        if i % 50 == 7:  # a repeated patient, and a blank line
            out += [",".join(fields), ""]
    (raw / "gp_register" / f"gp_register_{earlier}_faulty.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


def compare_on(before_ref: str, raw: Path | None) -> list[str]:
    with work_folder_with(before_ref, "compare-loaded-") as work:
        if raw is None:
            make_small_demo(work / "demo")
            raw = work / "demo" / "raw"
            add_faulty_extract(raw)
        for side, tree in (("before", work / "before"), ("after", ROOT)):
            shutil.copytree(raw, work / side / "data" / "raw", symlinks=True)
            validate_with(tree, work / side / "data")
        print(f"--- {before_ref} against this tree")
        return compare_outputs(work / "before" / "data" / "processed", work / "after" / "data" / "processed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-ref", default="main")
    parser.add_argument("--raw", type=Path, default=None, help="a raw/ folder to use instead of a demo district")
    args = parser.parse_args()
    finish(compare_on(args.before_ref, args.raw),
           "every canonical table, quarantine file, validation result and file report matches")


if __name__ == "__main__":
    main()
