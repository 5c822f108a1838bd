"""The Place Survey 2008 (CLG): the PSA 21 baseline and comparator set, matched to GSS codes.

    load_place_survey(path=None, register_path=None) -> (matched frame, unmatched frame)

The published table names its 352 authorities (April 2009 structure) by name only, with type
suffixes (LB, MD, UA, DC, CC), old spellings and a few odd forms ("Westminster City of LB",
"Medway Towns UA"). Each name is matched to mySociety's register of UK local authorities
(official name, nice name, alternative names; councils abolished since, with end dates and
successors):

1. normalise: lower case, '&' -> 'and', drop punctuation, strip the type suffix;
2. exact match on any register name (`rule = name`); else
3. the register's names with 'City of X' / 'X City' turned round, and the aliases in
   ``reference/place_survey_aliases.csv`` (each with its reason) (`rule = alias`);
4. a name matching several register entries takes the one that existed in April 2009 (Dorset CC,
   not the Dorset UA of 2019), then the one whose type fits the suffix
   (CC county, DC district, MD metropolitan, LB London borough, UA unitary) and England.

Every row ends matched or in the unmatched frame (reported in run_report.json, never dropped).
A council abolished since 2009 keeps its 2008 code and gets `successor_code` (the register's
``replaced-by``): a district whose LA code is the successor of several 2008 authorities has no
single 2008 value, and the comparison says so rather than picking one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

REFERENCE = Path(__file__).with_name("reference")
PLACE_SURVEY = REFERENCE / "place_survey_2008.csv"
REGISTER = REFERENCE / "mysociety_uk_local_authorities.csv"
ALIASES = REFERENCE / "place_survey_aliases.csv"

SUFFIX_TYPES = {"CC": ("CTY", "UA"), "DC": ("NMD",), "MD": ("MD",), "LB": ("LBO",), "UA": ("UA",)}
# the Place Survey's columns -> indicator (the survey definitions name them in `baseline`)
STRUCTURE_DATE = "2009-04-01"  # the authorities as the table lists them
PLACE_SURVEY_COLUMNS = ("Influence_Decisions", "Get_On_Well", "Belong", "Drug_Use_And_Selling", "Overall")


def normalise_name(name: str) -> str:
    """Lower case, '&' as 'and', no punctuation or 'council', single spaces."""
    s = str(name).lower().replace("&", " and ")
    s = re.sub(r"[.,'’()]", "", s)
    s = re.sub(r"[-/]", " ", s)
    s = re.sub(r"\b(royal borough of|london borough of|council|borough|metropolitan|district|county)\b", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def split_suffix(authority: str) -> tuple[str, str]:
    """('Trafford', 'MD') from 'Trafford MD'; ('X', '') when there is no known suffix."""
    match = re.match(r"^(.*?)\s+(LB|MD|UA|DC|CC)$", str(authority).strip())
    return (match.group(1), match.group(2)) if match else (str(authority).strip(), "")


def _register_index(register: pd.DataFrame) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for i, row in register.iterrows():
        names = [row["official-name"], row["nice-name"]]
        if pd.notna(row.get("alt-names")):
            names += str(row["alt-names"]).split(",")
        keys = set()
        for name in names:
            key = normalise_name(name)
            if not key:
                continue
            keys.add(key)
            # 'city of x' <-> 'x city' <-> 'x'
            for pattern in (r"^city of (.+)$", r"^(.+) city$"):
                m = re.match(pattern, key)
                if m:
                    keys.add(m.group(1))
        for key in keys:
            index.setdefault(key, []).append(i)
    return index


def load_place_survey(path: str | Path | None = None, register_path: str | Path | None = None,
                      aliases_path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Place Survey 2008 table with gss_code per authority, and the rows that could not be matched."""
    path = Path(path) if path else PLACE_SURVEY
    survey = pd.read_csv(path, encoding="utf-8-sig")
    missing = [c for c in ("Authority",) if c not in survey.columns]
    if missing:
        raise ValueError(f"{path}: no 'Authority' column; the Place Survey table needs Authority and the indicator "
                         f"columns {PLACE_SURVEY_COLUMNS}")
    register = pd.read_csv(Path(register_path) if register_path else REGISTER, dtype=str)
    aliases = pd.read_csv(Path(aliases_path) if aliases_path else ALIASES, dtype=str)
    alias_of = {normalise_name(a): normalise_name(b) for a, b in zip(aliases["place_survey_name"], aliases["register_name"])}
    index = _register_index(register)
    rows, unmatched = [], []
    for line, authority in enumerate(survey["Authority"], start=2):
        base, suffix = split_suffix(authority)
        key = normalise_name(base)
        rule = "name"
        hits = index.get(key, [])
        if not hits and key in alias_of:
            hits, rule = index.get(alias_of[key], []), "alias"
        if not hits:
            m = re.match(r"^(.+) city of$", key)  # 'Westminster City of'
            if m:
                hits, rule = index.get(m.group(1), []), "alias"
        if len(hits) > 1:  # the entry that existed in April 2009 (the table's structure), e.g. Dorset CC not Dorset UA
            hits = [i for i in hits if _existed(register.loc[i], STRUCTURE_DATE)] or hits
        if len(hits) > 1:
            fitting = [i for i in hits if register.loc[i, "local-authority-type"] in SUFFIX_TYPES.get(suffix, ())]
            english = [i for i in (fitting or hits) if str(register.loc[i, "gss-code"]).startswith("E")]
            hits = english or fitting or hits
            rule += "+type"
        if len(hits) != 1:
            unmatched.append({"line": line, "authority": authority,
                              "reason": "no register name matches" if not hits else
                              f"{len(hits)} register entries match: "
                              + ", ".join(register.loc[hits, "gss-code"].astype(str))})
            continue
        entry = register.loc[hits[0]]
        rows.append({"line": line, "authority": authority, "gss_code": entry["gss-code"],
                     "register_name": entry["official-name"], "authority_type": entry["local-authority-type"],
                     "end_date": entry.get("end-date"), "successor_code": _successor_code(register, entry),
                     "match_rule": rule})
    matched = pd.DataFrame(rows)
    if len(matched):
        matched = matched.merge(survey.assign(line=range(2, len(survey) + 2)).drop(columns=["Authority"]), on="line")
    return matched, pd.DataFrame(unmatched, columns=["line", "authority", "reason"])


def _existed(entry, date: str) -> bool:
    start, end = entry.get("start-date"), entry.get("end-date")
    return (pd.isna(start) or str(start) <= date) and (pd.isna(end) or str(end) >= date)


def _successor_code(register: pd.DataFrame, entry) -> str | None:
    replaced = entry.get("replaced-by")
    if pd.isna(replaced) or not str(replaced).strip():
        return None
    codes = register.loc[register["local-authority-code"] == str(replaced).strip(), "gss-code"]
    return codes.iloc[0] if len(codes) else None


def baseline_for(matched: pd.DataFrame, la_code: str) -> tuple[pd.Series | None, str]:
    """The 2008 row of the district's LA (by its code, or as the single predecessor of it), and how found."""
    own = matched[matched["gss_code"] == la_code]
    if len(own) == 1:
        return own.iloc[0], "own code"
    predecessors = matched[matched["successor_code"] == la_code]
    if len(predecessors) == 1:
        return predecessors.iloc[0], "predecessor"
    if len(predecessors) > 1:
        return None, (f"{la_code} succeeded {len(predecessors)} authorities of 2008 "
                      f"({', '.join(predecessors['authority'])}): no single 2008 value")
    return None, f"{la_code} is not among the Place Survey 2008 authorities"
