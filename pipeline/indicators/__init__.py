"""Indicator stages: each publishes a ``<something>_indicators`` table (spec/outputs.md indicators.csv).

- `basket`: the local basket of objective indicators, baselines, trends and early warnings (alerts).
"""
