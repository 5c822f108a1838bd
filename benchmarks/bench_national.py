"""Benchmark: the pipeline at national scale on one machine (issue 13).

Generates national-shaped, record-level synthetic inputs in DuckDB (no Python loops over rows):
a postcode directory over England's 33,750 LSOAs (80 postcodes each, about 2.7 million), the ONS
mid-2022 base population by LSOA x sex x single year, two GP register extracts (62 million
patients each at --scale 1), two school censuses (8 million pupils each at --scale 1), the vital
events by LSOA x sex x quarter and a resident survey. Then it runs the normal CLI stage by stage
(`cohesion validate`, `cohesion estimates`, `cohesion indicators`; each reuses the stages before
it), recording wall time and peak resident memory (GNU time) per stage, and times the floor: DuckDB
scanning the register files, joining the postcode directory and counting patients by
LSOA x sex x age band (the median of --floor-repeat runs, 3 by default, after one untimed read of
the files: one run read cold or warm moved it between 43.5 and 93.7 s on the same machine).

    .venv/bin/python benchmarks/bench_national.py --scale 0.1 [--format csv|parquet] [--workdir DIR] [--keep]
    .venv/bin/python benchmarks/bench_national.py --reuse-data DIR/data --stages estimates

--scale multiplies the patients and pupils (1 = 62 million rows per extract); the geography stays
national. Results: benchmarks/results/national.json and national.md (for the run completed).
--reuse-data runs on a data folder an earlier run kept (--keep: `<workdir>/national-*/data`)
instead of generating one (the scale and format are read from its files); --stages runs only some
of the stages (each reuses the earlier stages' results in that folder's processed/). A run of only
some stages prints its figures and writes the results files only with --write-results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
COHESION = Path(sys.executable).parent / "cohesion"

N_LSOAS = 33_750
POSTCODES_PER_LSOA = 80  # 2.7 million postcodes, as ONSPD's live English postcodes
PATIENTS = 62_000_000
PUPILS = 8_000_000
EXTRACTS = ("2022-06-30", "2022-12-31")
CENSUSES = ("2022-05-19", "2022-10-06")
SURVEY = 20_000
STAGES = ("validate", "estimates", "indicators")  # CLI commands, in pipeline order

# postcode p (0 ... n-1) -> a well-formed, unique UK postcode: outward AA + district 1-99, inward 9AA
POSTCODE_SQL = """
    chr(65 + CAST((p // 4000) % 26 AS INTEGER)) || chr(65 + CAST((p // 104000) % 26 AS INTEGER))
    || CAST(1 + (p // 2704000) % 99 AS VARCHAR) || ' ' || CAST(p % 10 AS VARCHAR)
    || substr('ABDEFGHJLNPQRSTUWXYZ', CAST((p // 10) % 20 AS INTEGER) + 1, 1)
    || substr('ABDEFGHJLNPQRSTUWXYZ', CAST((p // 200) % 20 AS INTEGER) + 1, 1)"""


def _copy(con, select: str, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
    con.execute(f"COPY ({select}) TO '{path.as_posix()}' {options}")


def write_inputs(raw: Path, scale: float, fmt: str) -> dict:
    """Write the national-shaped raw folder with DuckDB; return the row counts."""
    n_pc = N_LSOAS * POSTCODES_PER_LSOA
    patients = int(PATIENTS * scale)
    pupils = int(PUPILS * scale)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""CREATE TABLE geo AS
        SELECT l, printf('E01%06d', 10000 + l) AS lsoa_code, printf('E02%06d', 1000 + l // 5) AS msoa_code,
               printf('E05%06d', 10000 + (l + 2) // 5) AS ward_code, printf('E08%06d', l // 107) AS la_code
        FROM range({N_LSOAS}) AS t(l)""")
    con.execute(f"""CREATE TABLE pc AS
        SELECT p, {POSTCODE_SQL} AS postcode, g.*
        FROM range({n_pc}) AS t(p) JOIN geo g ON g.l = p // {POSTCODES_PER_LSOA}""")
    _copy(con, """SELECT postcode, ward_code, 'Ward ' || ward_code AS ward_name, msoa_code,
                         lsoa_code, 'LSOA ' || lsoa_code AS lsoa_name, la_code, 'LA ' || la_code AS la_name,
                         round(-2.0 + (p % 1000) / 1000.0, 6) AS lon, round(52.0 + (p % 777) / 1000.0, 6) AS lat
                  FROM pc""", raw / "geography" / "postcode_directory.csv", "csv")
    # base population: ONS wide layout, a column per single year 0 ... 90 (90 = 90+)
    per_lsoa = PATIENTS / N_LSOAS * scale / 1.04  # GP lists run ~4% above the resident population
    ages = ", ".join(f"CAST(round({per_lsoa / 2 / 91:.6f} * (1.3 - {a} / 120.0) * (0.8 + (l * 7 + {a}) % 5 / 10.0))"
                     f" AS INTEGER) AS \"{a if a < 90 else '90+'}\"" for a in range(91))
    _copy(con, f"""SELECT DATE '2022-06-30' AS period, lsoa_code AS area_code, 'LSOA ' || lsoa_code AS area_name,
                          'LSOA' AS geography, s.sex, {ages}
                   FROM geo CROSS JOIN (VALUES ('Males'), ('Females')) AS s(sex)""",
          raw / "base_population" / "ons_mye_2022_lsoa_sya.csv", "csv")
    # two GP register extracts: 2% leave and 2% join between them, 1% move house
    for k, date in enumerate(EXTRACTS):
        lo, hi = int(k * 0.02 * patients), int(patients * (1 + k * 0.02))
        moved = f"CASE WHEN {k} = 1 AND i % 100 = 3 THEN (i * 40503 + 17) % {n_pc} ELSE i * 2654435761 % {n_pc} END"
        _copy(con, f"""
            SELECT DATE '{date}' AS extract_date,
                   'P' || lpad(to_hex(i * 2654435761 % 1099511627776), 10, '0') AS patient_id,
                   printf('P%05d', pc.l // 5) AS practice_code,
                   CASE WHEN i % 50 = 0 THEN lower(replace(pc.postcode, ' ', '')) ELSE pc.postcode END AS postcode,
                   CASE WHEN i % 97 = 0 THEN 'U' WHEN i % 2 = 0 THEN 'M' ELSE 'F' END AS sex,
                   CAST(DATE '1922-07-01' + CAST((i * 7919) % 36500 AS INTEGER) AS VARCHAR) AS date_of_birth,
                   CAST(greatest(DATE '2022-06-01' - CAST(i % 9000 AS INTEGER),
                                 DATE '1922-07-01' + CAST((i * 7919) % 36500 AS INTEGER)) AS VARCHAR) AS registration_date,
                   CASE WHEN i % 40 = 0 THEN 'Y' ELSE 'N' END AS from_abroad,
                   substr('ABCDEFGHJKLMNPRSZ', CAST(i % 17 AS INTEGER) + 1, 1) AS ethnic_category
            FROM range({lo}, {hi}) AS t(i) JOIN pc ON pc.p = {moved}""",
              raw / "gp_register" / f"gp_register_{date}.{fmt}", fmt)
    years = ["N1", "N2", "R"] + [str(y) for y in range(1, 14)]
    year_list = "[" + ", ".join(f"'{y}'" for y in years) + "]"
    # schools are local: a pupil goes to one of three schools numbered after the home LSOA (about 21,000 schools)
    urn = f"100000 + (pc.l * 21000) // {N_LSOAS} + i % 3"
    for k, date in enumerate(CENSUSES):
        lo, hi = int(k * 0.015 * pupils), int(pupils * (1 + k * 0.015))
        _copy(con, f"""
            SELECT DATE '{date}' AS census_date, 'U' || lpad(to_hex(i * 2246822519 % 1099511627776), 10, '0') AS pupil_id,
                   {urn} AS urn, 'School ' || CAST({urn} AS VARCHAR) AS school_name,
                   CASE WHEN (i + {k}) % 16 < 9 THEN 'primary' ELSE 'secondary' END AS phase,
                   {year_list}[CAST((i + {k}) % 16 AS INTEGER) + 1] AS nc_year,
                   CASE WHEN i % 2 = 0 THEN 'M' ELSE 'F' END AS sex,
                   ['WBRI', 'APKN', 'BAFR', 'MWBC', 'AIND', 'WOTH', 'CHNE', 'REFU'][CAST(i % 8 AS INTEGER) + 1] AS ethnicity,
                   'ENG' AS first_language, CASE WHEN i % 5 = 0 THEN 'Y' ELSE 'N' END AS fsm_eligible,
                   CAST(DATE '2021-09-05' - CAST(i % 2000 AS INTEGER) AS VARCHAR) AS entry_date,
                   pc.postcode AS home_postcode
            FROM range({lo}, {hi}) AS t(i) JOIN pc ON pc.p = (i * 2654435761 + 11) % {n_pc}""",
              raw / "school_census" / f"school_census_{date}.{fmt}", fmt)
    births = PATIENTS * scale * 0.011 / 4 / N_LSOAS / 2
    _copy(con, f"""
        SELECT q.period_start, q.period_end, g.lsoa_code AS area_code, s.sex, '' AS age_band,
               CAST(round({births:.6f} * (0.5 + (g.l % 10) / 10.0)) AS INTEGER) AS births,
               CAST(round({births:.6f} * 0.8 * (0.5 + (g.l % 7) / 7.0)) AS INTEGER) AS deaths
        FROM geo g CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
        CROSS JOIN (VALUES (DATE '2022-07-01', DATE '2022-09-30'), (DATE '2022-10-01', DATE '2022-12-31'))
            AS q(period_start, period_end)""", raw / "vital_events" / "vital_events.csv", "csv")
    _copy(con, f"""
        SELECT 'residents-2022' AS survey_id, printf('R%07d', i) AS respondent_id,
               CAST(DATE '2022-10-01' + CAST(i % 80 AS INTEGER) AS VARCHAR) AS interview_date, pc.postcode AS area,
               CASE WHEN i % 2 = 0 THEN 'M' ELSE 'F' END AS sex,
               ['16-24', '25-34', '35-44', '45-54', '55-64', '65-74', '75+'][CAST(i % 7 AS INTEGER) + 1] AS age_band,
               ['White', 'Asian', 'Black', 'Mixed', 'Other'][CAST(i % 5 AS INTEGER) + 1] AS ethnic_group,
               ['Christian', 'No religion', 'Muslim', 'Other'][CAST(i % 4 AS INTEGER) + 1] AS religion,
               CASE WHEN i % 6 = 0 THEN 'Y' ELSE 'N' END AS disability,
               1 + i % 4 AS q_get_on, 1 + (i // 4) % 4 AS q_belong, 1 + (i // 16) % 4 AS q_influence,
               1 + i % 6 AS q_mix_home, 1 + (i // 6) % 6 AS q_mix_work, 1 + (i // 36) % 6 AS q_mix_school,
               1 + (i // 3) % 6 AS q_mix_pub, 1 + (i // 5) % 6 AS q_mix_group, 1 + (i // 7) % 6 AS q_mix_worship,
               1 + (i // 11) % 6 AS q_mix_shops
        FROM range({SURVEY}) AS t(i) JOIN pc ON pc.p = (i * 2654435761 + 5) % {n_pc}""",
          raw / "survey" / "residents_survey.csv", "csv")
    con.close()
    return {"postcodes": n_pc, "lsoas": N_LSOAS, "rows_per_extract": patients, "pupils_per_census": pupils}


def describe_inputs(raw: Path) -> tuple[dict, str]:
    """The sizes of a raw folder write_inputs made earlier (for --reuse-data), and its file format."""
    files = sorted((raw / "gp_register").glob("gp_register_*.*"))
    if not files:
        raise SystemExit(f"no gp_register_*.csv|parquet files in {raw / 'gp_register'}")
    fmt = files[0].suffix.lstrip(".")
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT count(*) FROM {reader}('{files[0].as_posix()}')").fetchall()[0][0]
        pupils = con.execute(f"SELECT count(*) FROM {reader}('{sorted((raw / 'school_census').glob('*.' + fmt))[0].as_posix()}')"
                             ).fetchall()[0][0]
        postcodes = con.execute(f"SELECT count(*) FROM read_csv('{(raw / 'geography' / 'postcode_directory.csv').as_posix()}')"
                                ).fetchall()[0][0]
    finally:
        con.close()
    return {"postcodes": postcodes, "lsoas": N_LSOAS, "rows_per_extract": rows, "pupils_per_census": pupils}, fmt


def time_bare_scan(raw: Path, fmt: str) -> dict:
    """The floor: DuckDB reading the register files, joining the postcode directory and counting
    patients by LSOA x sex x age band, in one process with nothing else to do."""
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    script = f"""
import duckdb, time, resource
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
con.execute(\"\"\"CREATE TABLE counts AS
    SELECT d.lsoa_code, r.sex, least(CAST(date_diff('year', CAST(r.date_of_birth AS DATE), r.extract_date) AS INTEGER) // 5, 18) AS band,
           count(*) AS patients
    FROM {reader}('{(raw / 'gp_register').as_posix()}/*.{fmt}') r
    JOIN read_csv('{(raw / 'geography' / 'postcode_directory.csv').as_posix()}') d
      ON replace(d.postcode, ' ', '') = replace(upper(r.postcode), ' ', '')
    GROUP BY d.lsoa_code, r.sex, band\"\"\")
print("RESULT", time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time())
"""
    with LoadSampler() as load:
        stdout = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    out = stdout[stdout.rindex("RESULT"):].split()[1:]
    return {"seconds": float(out[0]), "peak_rss_gib": int(out[1]) / 2**20, "cpu_seconds": float(out[2]),
            "load_average": load.summary()}


class LoadSampler:
    """The machine's 1-minute load average, sampled every few seconds while a stage runs: on a shared
    machine a wall time means little without it."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"mean": round(sum(self.samples) / len(self.samples), 1), "max": round(max(self.samples), 1)}


def read_once(raw: Path) -> None:
    """Read every raw file once, untimed, so that no timed run pays for reading it from disk."""
    for f in sorted(p for p in raw.rglob("*") if p.is_file()):
        with f.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def time_floor(raw: Path, fmt: str, repeat: int) -> dict:
    """The bare scan timed `repeat` times after one untimed read of the files: the median run, and every run."""
    read_once(raw)
    runs = [time_bare_scan(raw, fmt) for _ in range(max(repeat, 1))]
    for run in runs:
        print(f"bare scan: {run}", flush=True)
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**median, "runs": [[round(r["seconds"], 1), round(r["cpu_seconds"], 1)] for r in runs]}


def run_stage(command: str, data: Path, log_dir: Path, *options: str) -> dict:
    """Run `cohesion <command> [options]` under GNU time: wall and CPU seconds, peak RSS, load average, exit code."""
    log = log_dir / f"{command}.log"
    started = time.perf_counter()
    with log.open("w") as handle, LoadSampler() as load:
        proc = subprocess.run(["/usr/bin/time", "-v", str(COHESION), command, *options, "--data-dir", str(data)],
                              stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_gib": round(int(rss.group(1)) / 2**20, 2) if rss else None,
            "load_average": load.summary(), "exit_code": proc.returncode,
            "stage_seconds": stages_run(data) if proc.returncode == 0 else {},
            "log_tail": "" if proc.returncode == 0 else text[-1500:]}


def stages_run(data: Path) -> dict:
    """Seconds inside each stage the command ran (not reused), from the run report: the command's wall
    time less start-up, hashing and copying the previous run's database into staging."""
    report = json.loads((data / "processed" / "run_report.json").read_text())
    return {name: run["seconds"] for name, run in report.get("stage_runs", {}).items() if not run.get("reused")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 62 million patients per extract")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="register and census files")
    parser.add_argument("--workdir", type=Path, default=None, help="where the data folder goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data folder")
    parser.add_argument("--reuse-data", type=Path, default=None, metavar="DIR",
                        help="a data folder kept by an earlier run (DIR/raw): no inputs are generated")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages to run, of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--write-results", action="store_true",
                        help="write benchmarks/results/<results-name>.* even when only some stages ran")
    parser.add_argument("--floor-repeat", type=int, default=3,
                        help="time the bare scan this many times (after one untimed read of the files); the median run")
    parser.add_argument("--results-name", default="national",
                        help="name of the results files in benchmarks/results/ (default: national)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := [s for s in chosen if s not in STAGES]:
        parser.error(f"unknown stage(s) {unknown}: choose from {', '.join(STAGES)}")
    chosen = [s for s in STAGES if s in chosen]  # in pipeline order

    if args.reuse_data:
        data = args.reuse_data.resolve()
        if not (data / "raw" / "gp_register").is_dir():
            parser.error(f"--reuse-data {data}: no raw/gp_register folder there (pass the kept folder's data/)")
        work = Path(tempfile.mkdtemp(prefix="national-logs-", dir=args.workdir))
    else:
        work = Path(tempfile.mkdtemp(prefix="national-", dir=args.workdir))
        data = work / "data"
    try:
        started = time.perf_counter()
        if args.reuse_data:
            sizes, args.format = describe_inputs(data / "raw")
            args.scale = sizes["rows_per_extract"] / PATIENTS
            generate_seconds = None
            print(f"reusing the inputs in {data}: {sizes}", flush=True)
        else:
            sizes = write_inputs(data / "raw", args.scale, args.format)
            generate_seconds = round(time.perf_counter() - started, 1)
            print(f"inputs written in {generate_seconds:.0f} s: {sizes}", flush=True)
        floor = time_floor(data / "raw", args.format, args.floor_repeat)
        stages = {}
        for command in chosen:
            stages[command] = run_stage(command, data, work)
            print(f"{command}: {stages[command]}", flush=True)
            if stages[command]["exit_code"] != 0:
                break
        bare = floor["seconds"]
        result = {
            "rows_per_extract": sizes["rows_per_extract"],
            "scale": args.scale,
            "format": args.format,
            "extracts": len(EXTRACTS),
            "pupils_per_census": sizes["pupils_per_census"],
            "postcodes": sizes["postcodes"],
            "lsoas": sizes["lsoas"],
            "bare_scan_seconds": round(bare, 1),
            "bare_scan_peak_rss_gib": round(floor["peak_rss_gib"], 2),
            "bare_scan_cpu_seconds": round(floor["cpu_seconds"], 1),
            "bare_scan_load_average": floor["load_average"],
            "bare_scan_runs": floor["runs"],
            "ingest_validate_seconds": stages.get("validate", {}).get("seconds"),
            "estimates_seconds": stages.get("estimates", {}).get("seconds"),
            "indicators_seconds": stages.get("indicators", {}).get("seconds"),
            "estimate_stage_seconds": stages.get("estimates", {}).get("stage_seconds", {}).get("estimates"),
            "peak_rss_gib": max(((s["peak_rss_gib"] or 0) for s in stages.values()), default=None),
            "stages": stages,
            "ratios_to_bare_scan": {k: round(v["seconds"] / bare, 2) for k, v in stages.items()},
            "stage_ratios_to_bare_scan": {k: round(sum(v.get("stage_seconds", {}).values()) / bare, 2)
                                          for k, v in stages.items()},
            "cpu_ratios_to_bare_scan": {k: round(v["cpu_seconds"] / floor["cpu_seconds"], 1) for k, v in stages.items()},
            "load_average": {k: v["load_average"] for k, v in stages.items()},
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join([".venv/bin/python", "benchmarks/bench_national.py"] + sys.argv[1:]),
            "generate_inputs_seconds": generate_seconds,
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "duckdb": duckdb.__version__, "cpus": os.cpu_count(),
                        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                        "note": "shared with other engineers' jobs while measured (see load_average: "
                                "1-minute load, sampled every 5 s, on 2 cores)"},
        }
        if chosen == list(STAGES) or args.write_results:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{args.results_name}.json").write_text(json.dumps(result, indent=2) + "\n")
            (RESULTS / f"{args.results_name}.md").write_text(render_markdown(result))
        print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
        print(f"stage logs in {work}" if args.keep else "", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def render_markdown(r: dict) -> str:
    lines = [
        "# National-scale benchmark",
        "",
        f"`benchmarks/bench_national.py --scale {r['scale']} --format {r['format']}` (`make bench-national`):"
        f" {r['extracts']} GP register extracts of {r['rows_per_extract']:,} rows, two school censuses of "
        f"{r['pupils_per_census']:,} pupils, a postcode directory of {r['postcodes']:,} postcodes over "
        f"{r['lsoas']:,} LSOAs, vital events and a 20,000-respondent survey, all synthetic.",
        "",
        f"Machine: {r['machine']['cpus']} cores, {r['machine']['memory_gib']} GiB, {r['machine']['platform']}, "
        f"DuckDB {r['machine']['duckdb']}; {r['machine']['note']}.",
        "",
        "| stage (CLI command) | wall time (s) | x bare scan | inside the stages (s) | x bare scan | CPU time (s) "
        "| CPU x bare scan | peak RSS (GiB) | load average (mean / max) | exit |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---:|",
        f"| bare scan: DuckDB reads the register files, joins postcodes, counts by LSOA x sex x age band | "
        f"{r['bare_scan_seconds']} | 1 | | | {r['bare_scan_cpu_seconds']} | 1 | {r['bare_scan_peak_rss_gib']} | "
        f"{r['bare_scan_load_average']['mean']} / {r['bare_scan_load_average']['max']} | 0 |",
    ]
    for name, s in r["stages"].items():
        inside = " + ".join(f"{stage} {sec}" for stage, sec in s.get("stage_seconds", {}).items())
        lines.append(f"| `cohesion {name}` | {s['seconds']} | {r['ratios_to_bare_scan'][name]} | {inside} | "
                     f"{r.get('stage_ratios_to_bare_scan', {}).get(name, '')} | {s['cpu_seconds']} | "
                     f"{r['cpu_ratios_to_bare_scan'][name]} | {s['peak_rss_gib']} | "
                     f"{s['load_average']['mean']} / {s['load_average']['max']} | {s['exit_code']} |")
    lines += ["", "Each command reuses the stages before it from the previous run (`validate` = ingest + "
              "validation; `estimates` = the estimate stage only; `indicators` = the indicator stage only). "
              "'Inside the stages' is each stage's own time from the run report; the rest of a command is start-up, "
              "hashing the raw files and copying the previous run's database into staging. "
              "CPU time is user + system of every thread (GNU time): steadier than wall time on a shared machine, "
              "where the load average says how many other jobs competed for the 2 cores.", ""]
    if r.get("bare_scan_runs"):
        lines += [f"The bare scan is the median of {len(r['bare_scan_runs'])} runs after one untimed read of the files "
                  f"(wall s, CPU s: {r['bare_scan_runs']}).", ""]
    lines += [f"Measured {r['measured']} with `{r['command']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
