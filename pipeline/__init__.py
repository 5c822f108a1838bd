"""Community cohesion indicator pipeline.

Data flows one way: raw extracts -> validated DuckDB tables (ingest) -> small-area
population estimates (estimates) -> cohesion indicators and alerts (indicators) ->
what partners receive (outputs). See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
