"""Run the summary checks through great-expectations 1.x and build its HTML data docs.

Imported only when validation runs: importing great_expectations takes a couple of seconds.
One ephemeral context; one pandas data source; per check a dataframe asset, a whole-dataframe
batch definition, an expectation suite, a validation definition and a checkpoint whose
UpdateDataDocsAction writes the check's pages into the data docs site (a local folder).
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
    """Validate every check's frame with GX (data docs under `docs_dir`); one result per expectation per batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX's deprecation and pandas-compatibility chatter
        context = make_context(docs_dir)
        source = context.data_sources.add_pandas("batch_summaries")
        results: list[dict] = []
        for check in checks:
            try:
                results += _run_check(context, source, check)
            except Exception as exc:  # one check failing to run must not stop the others
                log.warning("validation check %s could not run: %s", check.name, exc, exc_info=True)
                results += [{"batch": check.table, "expectation": e.name, "success": False, "observed": None,
                             "details": f"the check could not run: {exc}"} for e in check.expectations]
        if not (docs_dir / "index.html").exists():
            context.build_data_docs(site_names=[SITE])
    return results


def _gx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain NumPy dtypes (nullable columns to float with NaN) so every GX metric handles them."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype):
            out[column] = out[column].astype("float64") if out[column].isna().any() else out[column].astype(
                "int64" if pd.api.types.is_integer_dtype(dtype) else "float64")
        elif pd.api.types.is_bool_dtype(dtype):
            out[column] = out[column].astype(bool)
    return out


def _expectation(expect: Expect, **extra):
    bounds = {}
    if expect.min_value is not None:
        bounds["min_value"] = expect.min_value
    if expect.max_value is not None:
        bounds["max_value"] = expect.max_value
    if expect.strict_min:
        bounds["strict_min"] = True
    return gxe.ExpectColumnValuesToBeBetween(column=expect.column, mostly=expect.mostly, notes=expect.notes,
                                             meta={"name": expect.name, **extra.pop("meta", {})}, **bounds, **extra)


def _run_check(context, source, check: Check) -> list[dict]:
    asset = source.add_dataframe_asset(check.name)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = context.suites.add(gx.ExpectationSuite(name=check.name))
    for expect in check.expectations:
        if expect.per_batch_mostly:
            for batch in check.batches:
                suite.add_expectation(_expectation(expect, row_condition=Column("batch") == batch,
                                                   meta={"batch": batch}))
        else:
            suite.add_expectation(_expectation(expect))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=check.name, data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=check.name, validation_definitions=[definition], result_format=RESULT_FORMAT,
        actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])]))
    run = checkpoint.run(batch_parameters={"dataframe": _gx_frame(check.frame)})
    expects = {e.name: e for e in check.expectations}
    results = []
    for validation in run.run_results.values():
        for outcome in validation.results:
            meta = outcome.expectation_config.meta or {}
            expect = expects[meta["name"]]
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
                        "observed": row.get(expect.observed or expect.column), "details": details})
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
        details = "no area large enough to check"
    else:
        details = (f"{unexpected} of {checked} area(s) outside {expect.min_value}–{expect.max_value} "
                   f"(at least {expect.mostly:.0%} must be within)" + (f": {examples}" if examples else ""))
        if unexpected > LIST_EXAMPLES:
            details += f" and {unexpected - LIST_EXAMPLES} more"
    return {"batch": batch, "expectation": expect.name, "success": bool(outcome.success) and error is None,
            "observed": round(1 - unexpected / checked, 6) if checked else None, "details": details}


def _text(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
