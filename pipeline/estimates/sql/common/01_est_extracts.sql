-- The GP extract dates, the dates we estimate for: those of the patient register, or, without
-- one (counts-only mode), those of the published practice x LSOA counts. k = 0 is the first
-- extract (t0); years_since_base counts from the base population's date.
WITH d AS (
    SELECT DISTINCT extract_date FROM est_src_gp_register WHERE extract_date IS NOT NULL
    UNION
    SELECT DISTINCT extract_date FROM est_src_gp_counts
    WHERE extract_date IS NOT NULL AND NOT EXISTS (SELECT 1 FROM est_src_gp_register)
)
SELECT
    extract_date,
    CAST(row_number() OVER (ORDER BY extract_date) - 1 AS INTEGER) AS k,
    lag(extract_date) OVER (ORDER BY extract_date) AS prev_date,
    date_diff('day', {{ base_date }}, extract_date) / 365.25 AS years_since_base,
    date_diff('day', lag(extract_date) OVER (ORDER BY extract_date), extract_date) / 365.25 AS period_years
FROM d
