"""Indicator stages: each publishes a <name>_indicators table (schemas/published.py)."""
