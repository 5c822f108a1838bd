-- Counts-only mode: the extract dates of the published practice x LSOA counts, the dates we
-- estimate for. k = 0 is the first extract (t0); years_since_base counts from the base date.
SELECT
    extract_date,
    CAST(row_number() OVER (ORDER BY extract_date) - 1 AS INTEGER) AS k,
    lag(extract_date) OVER (ORDER BY extract_date) AS prev_date,
    date_diff('day', {{ base_date }}, extract_date) / 365.25 AS years_since_base,
    date_diff('day', lag(extract_date) OVER (ORDER BY extract_date), extract_date) / 365.25 AS period_years
FROM (SELECT DISTINCT extract_date FROM est_src_gp_counts WHERE extract_date IS NOT NULL) AS d
