-- Births not yet on the list and deaths not yet removed from it, per LSOA x sex x band x extract.
-- For extract date t: births in the window (t - birth_lag_days, t] and deaths in
-- (t - death_lag_days, t], each event row pro-rated by the share of its period inside the window
-- (events are assumed spread evenly over their period). Births go to band 0-4, split by sex when
-- given (else 51.2% boys, the usual sex ratio at birth). Ward-level rows are shared among the
-- ward's LSOAs by ward_share x the LSOA's list in that sex and band. Deaths without an age band
-- are spread over bands by the LSOA's list (a crude fallback).
WITH ev AS (
    SELECT
        row_number() OVER () AS ev_id,
        period_start, period_end, area_code, lower(area_type) AS area_type,
        upper(coalesce(sex, '')) AS sex,
        (SELECT l.age_band FROM ref_age_label l WHERE l.label = trim(v.age_band)) AS age_band,
        coalesce(births, 0)::DOUBLE AS births,
        coalesce(deaths, 0)::DOUBLE AS deaths,
        (period_end - period_start + 1)::DOUBLE AS period_days
    FROM est_src_vital_events v
    WHERE period_start IS NOT NULL AND period_end IS NOT NULL AND period_end >= period_start
      AND (coalesce(births, 0) > 0 OR coalesce(deaths, 0) > 0)
),
amt AS (
    SELECT ev_id, e.extract_date, 'birth' AS kind, ev.sex, '0-4' AS age_band, ev.area_code, ev.area_type,
           ev.births * greatest(0, least(ev.period_end, e.extract_date)
                                   - greatest(ev.period_start, e.extract_date - {{ birth_lag_days }} + 1) + 1)
               / ev.period_days AS amount
    FROM ev CROSS JOIN est_extracts e
    WHERE ev.births > 0
    UNION ALL
    SELECT ev_id, e.extract_date, 'death' AS kind, ev.sex, ev.age_band, ev.area_code, ev.area_type,
           ev.deaths * greatest(0, least(ev.period_end, e.extract_date)
                                   - greatest(ev.period_start, e.extract_date - {{ death_lag_days }} + 1) + 1)
               / ev.period_days AS amount
    FROM ev CROSS JOIN est_extracts e
    WHERE ev.deaths > 0
),
amt_sex AS (
    SELECT a.ev_id, a.extract_date, a.kind, s.sex, a.age_band, a.area_code, a.area_type,
           a.amount * CASE WHEN a.sex IN ('M', 'F') THEN 1.0
                           WHEN a.kind = 'birth' THEN (CASE s.sex WHEN 'M' THEN 0.512 ELSE 0.488 END)
                           ELSE 0.5 END AS amount
    FROM amt a
    JOIN (VALUES ('M'), ('F')) AS s(sex) ON a.sex NOT IN ('M', 'F') OR a.sex = s.sex
    WHERE a.amount > 0
),
sex_list AS (
    SELECT lsoa_code, extract_date, sex, sum(list_count) AS list_count
    FROM est_cells GROUP BY ALL
),
targets AS (
    SELECT a.*, a.area_code AS lsoa_code, 1.0 AS w
    FROM amt_sex a
    WHERE a.area_type = 'lsoa' AND a.area_code IN (SELECT lsoa_code FROM est_base)
    UNION ALL
    SELECT a.*, g.lsoa_code,
           g.ward_share * (coalesce(c.list_count, sl.list_count, 0) + 1e-9) AS w
    FROM amt_sex a
    JOIN est_lsoa_geo g ON g.ward_code = a.area_code AND g.lsoa_code IN (SELECT lsoa_code FROM est_base)
    LEFT JOIN est_cells c
        ON a.age_band IS NOT NULL AND c.lsoa_code = g.lsoa_code AND c.extract_date = a.extract_date
       AND c.sex = a.sex AND c.age_band = a.age_band
    LEFT JOIN sex_list sl
        ON a.age_band IS NULL AND sl.lsoa_code = g.lsoa_code AND sl.extract_date = a.extract_date AND sl.sex = a.sex
    WHERE a.area_type = 'ward'
),
to_lsoa AS (
    SELECT ev_id, extract_date, kind, sex, age_band, lsoa_code,
           amount * w / sum(w) OVER (PARTITION BY ev_id, extract_date, kind, sex) AS amount
    FROM targets
),
banded AS (
    SELECT lsoa_code, extract_date, kind, sex, age_band, amount FROM to_lsoa WHERE age_band IS NOT NULL
    UNION ALL
    SELECT t.lsoa_code, t.extract_date, t.kind, t.sex, c.age_band,
           t.amount * (c.list_count + 1e-9)
               / sum(c.list_count + 1e-9) OVER (PARTITION BY t.ev_id, t.extract_date, t.kind, t.sex, t.lsoa_code)
    FROM to_lsoa t
    JOIN est_cells c ON c.lsoa_code = t.lsoa_code AND c.extract_date = t.extract_date AND c.sex = t.sex
    WHERE t.age_band IS NULL
)
SELECT lsoa_code, extract_date, sex, age_band,
       coalesce(sum(amount) FILTER (WHERE kind = 'birth'), 0) AS births_lag,
       coalesce(sum(amount) FILTER (WHERE kind = 'death'), 0) AS deaths_lag
FROM banded
GROUP BY ALL
