"""One numpy Generator per random component, each from its own SeedSequence child.

`Streams(seed)` spawns one child per name in COMPONENTS (in that fixed order), so adding or
re-seeding one component leaves every other component's stream exactly as it was. A
component can be given its own seed (`overrides={"cleaning": 7}`): only that stream changes.
"""

from __future__ import annotations

import numpy as np

COMPONENTS = (
    "population",    # people placed at postcodes, dates of birth, ethnicity
    "practice",      # which practice a person uses
    "inflation",     # each area's list ratio (published quantiles)
    "unregistered",  # which residents are not on a list
    "ghosts",        # the ghost records present at the start
    "mortality",
    "fertility",
    "migration",     # moves out, emigration, moves within, arrivals
    "registration",  # lags of registration, deregistration and address updates
    "ghost_fate",    # whether a leaver's record stays on the list
    "cleaning",      # steady ghost removal and practice sweeps
    "outside",       # registrants living outside the district
    "students",
    "base_error",    # the published base's errors
    "ids",           # pseudonymous identifiers
    "untidy",        # how the extract writes postcodes, sex codes, dates of birth
    "schools",       # the school census: who is on it, schools, pupils' records (added last: the
                     # others' SeedSequence children, spawned in this order, are unchanged)
)


class Streams:
    def __init__(self, seed: int, overrides: dict[str, int] | None = None):
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown random components {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
        children = np.random.SeedSequence(seed).spawn(len(COMPONENTS))
        self.seeds = {}
        self._gens = {}
        for name, child in zip(COMPONENTS, children):
            if name in overrides:
                child = np.random.SeedSequence(int(overrides[name]))
            self.seeds[name] = overrides.get(name, f"{seed}/{COMPONENTS.index(name)}")
            self._gens[name] = np.random.Generator(np.random.PCG64(child))

    def __getitem__(self, name: str) -> np.random.Generator:
        return self._gens[name]
