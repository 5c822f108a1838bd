"""Command line behind the make targets: `cohesion --help` lists the steps.

Each step runs every stage before it too (a run always rebuilds from raw/, so results never
mix two versions of the data), in a staging folder that replaces processed/ only on success.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import ConfigError, load_settings
from pipeline.run import RunError, RunInterrupted, run_pipeline

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Community cohesion indicator pipeline: raw extracts -> validated tables -> "
                       "small-area population estimates -> indicators -> partner outputs.")
console = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="config file (default: config.toml at the project root)")
DataDirOption = typer.Option(None, "--data-dir", "-d", help="data folder holding raw/ (default: data_dir in the config)")


class RichProgress:
    """Progress bar over files for long steps."""

    def __init__(self, label: str):
        self.label = label
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[item]}"), TimeElapsedColumn(), console=console,
                                 disable=not console.is_terminal)
        self.task = None

    def start(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=total, item="")

    def advance(self, item: str) -> None:
        self.progress.update(self.task, advance=1, item=item)

    def stop(self) -> None:
        self.progress.stop()


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, RichHandler)]
    root.addHandler(RichHandler(console=console, show_path=False, level=logging.DEBUG if verbose else logging.INFO))
    root.setLevel(logging.DEBUG)  # the run's log file keeps everything; the console shows INFO
    for noisy in ("great_expectations", "matplotlib", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings(config: Optional[Path], data_dir: Optional[Path]):
    """The validated configuration, or one line naming the mistake (exit status 2)."""
    try:
        return load_settings(config, data_dir=data_dir)
    except ConfigError as exc:
        console.print(f"[bold red]Configuration error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2)


def _run(last_stage: str, config: Optional[Path], data_dir: Optional[Path], verbose: bool = False) -> None:
    _setup_logging(verbose)
    settings = _settings(config, data_dir)
    # messages are printed with escape(): text in square brackets ([ingest.header_map.gp_register]) is kept
    try:
        summary = run_pipeline(settings, last_stage, progress_factory=RichProgress)
    except RunInterrupted as exc:
        console.print(f"[bold red]Stopped:[/] {escape(str(exc))}. The previous outputs in {escape(str(settings.processed_dir))} "
                      f"are unchanged; the run's log is in {escape(str(settings.data_dir / 'failed-runs'))}.", soft_wrap=True)
        raise typer.Exit(128 + exc.signum)
    except RunError as exc:
        console.print(f"[bold red]Stopped:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2)
    except Exception as exc:  # noqa: BLE001 - the message is the user's guide; the traceback is in the log
        console.print(f"[bold red]Run failed:[/] {escape(str(exc))}\nThe previous outputs in "
                      f"{escape(str(settings.processed_dir))} are unchanged; the run's log is in "
                      f"{escape(str(settings.data_dir / 'failed-runs'))}.", soft_wrap=True)
        raise typer.Exit(1)
    console.print(final_line(summary), highlight=False, markup=False, soft_wrap=True)


def final_line(summary) -> str:
    """The last line of every run: rows, warnings (files not read or skipped), failed expectations,
    what was reused, where the results are. Printed without markup, so bracketed text is kept."""
    report = summary.report
    totals = report.get("totals", {})
    warnings = report.get("warnings", [])
    failed = report.get("expectations", {}).get("failed", [])
    reused = [name for name, run in report.get("stage_runs", {}).items() if run.get("reused")]
    head = "Done with warnings" if warnings else "Done"
    parts = [f"{head} ({summary.run_id}): {totals.get('rows_read', 0):,} rows read, {totals.get('rows_loaded', 0):,} "
             f"loaded, {totals.get('rows_quarantined', 0):,} quarantined"]
    if warnings:
        parts.append(f"{len(warnings)} warning(s): " + "; ".join(warnings))
    if failed:
        names = sorted({r["expectation"] for r in failed})
        parts.append(f"{len(failed)} batch expectation(s) FAILED ({', '.join(names)}: see validation_results.json)")
    if reused:
        parts.append(f"reused unchanged {', '.join(reused)}")
    return "; ".join(parts) + f". Results in {summary.processed_dir}"


@app.command("demo-data")
def demo_data(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Generate the synthetic demo district into an EMPTY raw/ folder (and its truth into truth/).

    A raw/ folder that already holds extracts is left exactly as it is.
    """
    _setup_logging(False)
    from pipeline.demo import generate_district

    settings = _settings(config, data_dir)
    summary = generate_district(settings.demo, settings.data_dir)
    if summary.get("skipped"):
        console.print(f"raw/ in {settings.data_dir} already holds extracts: left as it is, none generated.")
    else:
        console.print(f"[green]Demo district written[/] to {settings.raw_dir} (synthetic records; truth in {settings.truth_dir})")


@app.command()
def ingest(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption,
           verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Read every file in raw/<source>/, check each row against its contract in schemas/, quarantine the
    rows that fail (processed/quarantine/<source>.csv) and load the rest into processed/cohesion.duckdb.
    Writes processed/run_report.json (rows read = loaded + quarantined for every file)."""
    _run("ingest", config, data_dir, verbose)


@app.command()
def validate(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption,
             verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Ingest, then check each batch with great-expectations (one row per patient per extract, one extract
    date per file, non-negative counts, postcodes found, plausible list changes); data docs in processed/data_docs/."""
    _run("validate", config, data_dir, verbose)


@app.command()
def estimates(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption,
              verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Ingest and validate, then estimate small-area populations the COHDMAP way (GP list change, birth and
    death corrections, margins of error from population turbulence)."""
    _run("estimates", config, data_dir, verbose)


@app.command()
def indicators(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Up to the indicators: PSA 21 cohesion indicators from the resident survey, the local basket and early warnings."""
    _run("indicators", config, data_dir)


@app.command()
def outputs(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption,
            verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run every built stage and publish what partners receive to processed/outputs/, through disclosure control."""
    _run("outputs", config, data_dir, verbose)


@app.command("show-config")
def show_config(config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Print the validated configuration a run would use."""
    print(_settings(config, data_dir).as_json())


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
