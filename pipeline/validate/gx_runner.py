"""Run the summary checks through great-expectations 1.x and build its HTML data docs.

Imported only when validation runs: importing great_expectations takes about 3 CPU-s, so when ingest
runs first in the same run this module is imported in the background meanwhile (`Stage.warm_up`).
One ephemeral context; one pandas data source; one dataframe asset of all the checks' summaries
with a whole-dataframe batch definition; one expectation suite, validation definition and
checkpoint, whose UpdateDataDocsAction writes the pages into the data docs site (a local folder).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pandas as pd

from pipeline.validate.summaries import LIST_EXAMPLES, Check, Expect, change_text, plain

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave the machine

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.checkpoint import UpdateDataDocsAction  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import Column  # noqa: E402

log = logging.getLogger(__name__)
SITE = "cohesion_data_docs"
SUITE = "batch_expectations"
SUMMARY = "summary"  # column naming the check a row of the combined frame belongs to
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["batch"]}


def make_context(docs_dir: Path):
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }},
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_checks(checks: list[Check], docs_dir: Path) -> list[dict]:
    """Validate every check's frame with GX (data docs under `docs_dir`); one result per expectation per batch.

    All checks share one suite, validation definition and checkpoint: the data docs action renders
    its pages once per validation result, compiling its templates each time (about 0.4 s), so one
    validation result keeps the run fast however many tables were loaded. The checks' frames travel
    as one frame with a `summary` column naming the check, and each expectation carries the row
    condition ``summary == <check>`` (and ``batch == <file>`` for the per-extract list-change checks).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX's deprecation and pandas-compatibility chatter
        context = make_context(docs_dir)
        suite = context.suites.add(gx.ExpectationSuite(name=SUITE))
        ready, results = [], []
        for check in checks:
            try:
                for expectation in _expectations(check):
                    suite.add_expectation(expectation)
                ready.append(check)
            except Exception as exc:  # one check failing to build must not stop the others
                log.warning("validation check %s could not be set up: %s", check.name, exc, exc_info=True)
                results += _error_results(check, f"the check could not be set up: {exc}")
        try:
            results += _run(context, suite, ready)
        except Exception as exc:
            log.warning("great-expectations could not run the checks: %s", exc, exc_info=True)
            for check in ready:
                results += _error_results(check, f"great-expectations could not run the check: {exc}")
        if not (docs_dir / "index.html").exists():
            context.build_data_docs(site_names=[SITE])
    return results


def _error_results(check: Check, message: str) -> list[dict]:
    return [{"batch": check.table, "expectation": e.name, "success": False, "observed": None, "details": message}
            for e in check.expectations]


def _gx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain NumPy dtypes (nullable numbers to float with NaN) so every GX metric handles them."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[column] = out[column].astype(bool)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype):
            out[column] = out[column].astype("float64")
    return out


def _expectations(check: Check):
    own_rows = Column(SUMMARY) == check.name
    for expect in check.expectations:
        bounds = {}
        if expect.min_value is not None:
            bounds["min_value"] = expect.min_value
        if expect.max_value is not None:
            bounds["max_value"] = expect.max_value
        if expect.strict_min:
            bounds["strict_min"] = True
        common = dict(column=expect.column, mostly=expect.mostly, notes=f"{check.table}: {expect.notes}", **bounds)
        if expect.per_batch_mostly:
            for batch in check.batches:
                yield gxe.ExpectColumnValuesToBeBetween(
                    row_condition=own_rows & (Column("batch") == batch),
                    meta={"check": check.name, "name": expect.name, "batch": batch}, **common)
        else:
            yield gxe.ExpectColumnValuesToBeBetween(
                row_condition=own_rows, meta={"check": check.name, "name": expect.name}, **common)


def _run(context, suite, checks: list[Check]) -> list[dict]:
    frames = [_gx_frame(c.frame).assign(**{SUMMARY: c.name}) for c in checks if len(c.frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({SUMMARY: [], "batch": []})
    for check in checks:  # a check with no rows (no area large enough to compare) still needs its columns
        for column in [e.column for e in check.expectations if e.column not in frame.columns]:
            frame[column] = pd.Series(dtype="float64", index=frame.index)
    batch_definition = (context.data_sources.add_pandas("batch_summaries")
                        .add_dataframe_asset(SUITE).add_batch_definition_whole_dataframe("all_summaries"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE, data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=SUITE, validation_definitions=[definition], result_format=RESULT_FORMAT,
        actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])]))
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    by_name = {c.name: c for c in checks}
    results = []
    for validation in run.run_results.values():
        for outcome in validation.results:
            meta = outcome.expectation_config.meta or {}
            check = by_name[meta["check"]]
            expect = next(e for e in check.expectations if e.name == meta["name"])
            if expect.per_batch_mostly:
                results.append(_batch_mostly_result(check, expect, meta["batch"], outcome))
            else:
                results += _per_row_results(check, expect, outcome)
    return results


def _raised(outcome) -> str | None:
    info = outcome.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if isinstance(item, dict) and item.get("raised_exception"):
            return item.get("exception_message") or "GX raised an exception"
    return None


def _per_row_results(check: Check, expect: Expect, outcome) -> list[dict]:
    error = _raised(outcome)
    flagged = {item.get("batch") for item in (outcome.result or {}).get("unexpected_index_list") or []}
    results = []
    for row in check.frame.to_dict("records"):
        row = {k: plain(v) for k, v in row.items()}
        success = error is None and row["batch"] not in flagged
        details = error or expect.details.format(**{k: _text(v) for k, v in row.items()})
        results.append({"batch": row["batch"], "expectation": expect.name, "success": success,
                        "observed": row.get(expect.column), "details": details})
    return results


def _batch_mostly_result(check: Check, expect: Expect, batch: str, outcome) -> dict:
    error = _raised(outcome)
    rows = check.frame[check.frame["batch"] == batch]
    values = rows[expect.column]
    low = values < expect.min_value if expect.min_value is not None else False
    high = values > expect.max_value if expect.max_value is not None else False
    out_of_bounds = rows[low | high].sort_values(expect.column, ascending=False)
    checked, unexpected = len(rows), len(out_of_bounds)
    examples = ", ".join(change_text(r) for _, r in out_of_bounds.head(LIST_EXAMPLES).iterrows())
    if error:
        details = error
    elif not checked:
        details = "no area with a list large enough to check"
    else:
        details = expect.details.format(unexpected=unexpected, checked=checked) + (f": {examples}" if examples else "")
        if unexpected > LIST_EXAMPLES:
            details += f" and {unexpected - LIST_EXAMPLES} more"
    success = bool(outcome.success) and error is None
    if success and unexpected:
        log.info("%s on %s passes, but note: %s", expect.name, batch, details)
    return {"batch": batch, "expectation": expect.name, "success": success,
            "observed": round(1 - unexpected / checked, 6) if checked else None, "details": details}


def _text(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
