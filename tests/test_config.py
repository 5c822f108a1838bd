"""Configuration mistakes never fall back to defaults: each one is a one-line error naming the
section and key (issue 6 item 4, issue 7), and unknown COHESION_* variables are warned about."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import DEFAULT_CONFIG, ConfigError, load_settings

runner = CliRunner()


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(DEFAULT_CONFIG.read_text() + "\n" + text if not text.startswith("!") else text[1:])
    return path


def one_line_error(**overrides) -> str:
    with pytest.raises(ConfigError) as error:
        load_settings(**overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("section, key", [
    ("estimates", "shrinkage_strenght"), ("demo", "sead"), ("ingest", "on_unreadible"),
    ("validation", "min_postcode_mach"), ("outputs", "min_cel_count"),
])
def test_a_misspelt_key_in_any_section_is_refused_naming_it(section, key):
    message = one_line_error(**{section: {key: 1}})
    assert f"[{section}] {key}: unknown key in [{section}]" in message
    assert "did you mean" in message


def test_a_misspelt_nested_key_in_the_file_is_refused(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("shrinkage_strength = 50.0", "shrinkage_strenght = 5.0")
    path = tmp_path / "config.toml"
    path.write_text(text)
    message = one_line_error(path=path)
    assert message.startswith("config.toml: [estimates] shrinkage_strenght: unknown key")


def test_an_unknown_top_level_key_is_refused():
    assert "data_folder: unknown key in the top level" in one_line_error(data_folder="x")


@pytest.mark.parametrize("overrides, words", [
    ({"demo": {"scale": "big"}}, "[demo] scale: Input should be a valid number"),
    ({"ingest": {"on_unreadable": "ignore"}}, "[ingest] on_unreadable: Input should be 'stop' or 'skip'"),
    ({"estimates": {"interval_level": 0.9}}, "[estimates] interval_level: 0.9 is not supported"),
    ({"ingest": {"date_forms": {"gp_register": ["mdy"]}}}, "[ingest.date_forms] gp_register: unknown date form 'mdy'"),
    ({"ingest": {"date_forms": {"gp_registers": ["iso"]}}}, "unknown source 'gp_registers'; did you mean 'gp_register'?"),
])
def test_an_invalid_value_is_one_line_naming_the_key(overrides, words):
    assert words in one_line_error(**overrides)


def test_a_missing_config_file_is_an_error(tmp_path):
    assert one_line_error(path=tmp_path / "nope.toml") == f"--config {tmp_path / 'nope.toml'}: no such file"


def test_a_missing_margin_model_is_an_error(tmp_path):
    message = one_line_error(estimates={"margin_model_path": str(tmp_path / "model.json")})
    assert "[estimates] margin_model_path: no such file" in message
    (tmp_path / "model.json").write_text("{}")
    assert load_settings(estimates={"margin_model_path": str(tmp_path / "model.json")}).estimates.margin_model_path


@pytest.mark.parametrize("header_map, words", [
    ({"gp_registers": {"patient_id": "nhs_pseudo_id"}}, "header_map: unknown source 'gp_registers'"),
    ({"gp_register": {"patient_idd": "nhs_pseudo_id"}}, "[ingest.header_map.gp_register] patient_idd: not a gp_register column; did you mean 'patient_id'?"),
])
def test_header_maps_must_name_real_sources_and_columns(header_map, words):
    assert words in one_line_error(ingest={"header_map": header_map})


def test_invalid_toml_is_one_line(tmp_path):
    path = config_file(tmp_path, "![estimates\nmethod = 1\n")
    assert "not valid TOML" in one_line_error(path=path)


def test_unknown_environment_variables_are_warned_about_and_known_ones_apply(monkeypatch, caplog):
    monkeypatch.setenv("COHESION_DEMO__SCALEE", "0.1")
    monkeypatch.setenv("COHESION_DATADIR", "/elsewhere")
    monkeypatch.setenv("COHESION_DEMO__SEED", "7")
    with caplog.at_level(logging.WARNING, logger="pipeline.config"):
        settings = load_settings()
    assert settings.demo.seed == 7 and settings.demo.scale == 1.0
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "COHESION_DEMO__SCALEE" in warned and "COHESION_DATADIR" in warned and "COHESION_DEMO__SEED" not in warned


def test_an_invalid_environment_value_is_one_line(monkeypatch):
    monkeypatch.setenv("COHESION_DEMO__SCALE", "tiny")
    assert "[demo] scale" in one_line_error()


def test_the_cli_prints_one_line_and_keeps_bracketed_text(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(DEFAULT_CONFIG.read_text().replace("[ingest.header_map.gp_register]", "[ingest.header_map.gp_registers]")
                    .replace("# patient_id = \"nhs_pseudo_id\"", "patient_id = \"nhs_pseudo_id\""))
    result = runner.invoke(app, ["show-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "[ingest] header_map: unknown source 'gp_registers'" in result.output.splitlines()[0]
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["ingest", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no such file" in result.output
