"""The data contracts: one pydantic row model per raw layout, plus the shared column types.

A contract says what a valid row of a raw extract looks like (columns, types, code lists,
patterns, date logic). The same model validates a single record in Python and, through
`pipeline.ingest.rules`, compiles to vectorised SQL that checks a whole file at once.
"""

from schemas.contracts import LAYOUTS, SOURCES, Layout, layouts_for
from schemas.types import Contract, RowRule, SqlForm

__all__ = ["LAYOUTS", "SOURCES", "Layout", "layouts_for", "Contract", "RowRule", "SqlForm"]
