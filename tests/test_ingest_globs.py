"""Row checks' GLOB forms of pattern rules (pipeline.ingest.rules.glob_forms) match exactly what the
regular expressions match: every pattern of every contract, on random and edge-case values."""

from __future__ import annotations

import random

import duckdb
import pytest

from pipeline.ingest.rules import column_specs, glob_forms
from schemas.contracts import LAYOUTS

PATTERNS = sorted({spec.pattern.removeprefix("^").removesuffix("$")
                   for layout in LAYOUTS for spec in column_specs(layout.contract) if spec.pattern})
ALPHABET = "AEMNSWZaez0125789 +-_/.É\t"


def sample_values(pattern: str, n: int = 3000) -> list[str]:
    """Random strings near the pattern's lengths, and values built to match it with one change."""
    rng = random.Random(pattern)
    values = ["", " ", "M15 4AB", "m15 4ab", "M15 4AB ", "M154AB", "E01006112", "E0100611", "M85001", "85+", "90+",
              "ALL", "12-15", "123+", "ENG", "ÉNG", "E0١006112", "M85001\n", "123456"]
    for _ in range(n):
        length = rng.randint(0, 12)
        values.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return values


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if glob_forms(p)])
def test_glob_forms_match_what_the_pattern_matches(pattern):
    globs = glob_forms(pattern)
    con = duckdb.connect()
    con.execute("CREATE TABLE v AS SELECT unnest(?::VARCHAR[]) AS x", [sample_values(pattern)])
    glob = " OR ".join(f"x GLOB '{g}'" for g in globs)
    differ = con.execute(f"SELECT x FROM v WHERE regexp_full_match(x, ?) IS DISTINCT FROM ({glob})", [pattern]).fetchall()
    assert differ == []


def test_patterns_without_an_exact_glob_form_keep_the_regular_expression():
    assert glob_forms(r"[A-Za-z0-9_\-]{4,64}") is None  # too many lengths
    assert glob_forms(r"[^A-Z]\d") is None  # negated class
    assert glob_forms(r"\d+") is None and glob_forms(r"A*") is None
    assert glob_forms(r"(a|(b))") is None
    assert glob_forms(r"[A-Z]\d{5}") == ["[A-Z][0-9][0-9][0-9][0-9][0-9]"]
