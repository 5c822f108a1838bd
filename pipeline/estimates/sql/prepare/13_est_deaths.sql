-- Deaths since the base date, per LSOA x sex x band x extract: the deaths registered (vital events)
-- in (base_date, extract_date], each event row pro-rated by the share of its period inside that
-- window (events spread evenly over their period). For the cohort roll-forward (cohort_model.py):
-- deaths between the base date and the first extract are taken off the aged base, and deaths
-- since the first extract are counted one for one, not scaled by the list's inflation.
-- Rows without a sex are halved between M and F; ward-level rows are shared among the ward's
-- LSOAs by ward_share x the LSOA's base population in the band (all bands where the row has no
-- age band, then split over bands by the LSOA's base). Only LSOAs of the base population.
WITH ev AS (
    SELECT
        row_number() OVER (ORDER BY period_start, period_end, area_type, area_code, sex, age_band,
                                 deaths) AS ev_id,
        period_start, period_end, area_code, lower(area_type) AS area_type,
        upper(coalesce(sex, '')) AS sex,
        (SELECT l.age_band FROM ref_age_label l WHERE l.label = trim(v.age_band)) AS age_band,
        deaths::DOUBLE AS deaths,
        (date_diff('day', period_start, period_end) + 1)::DOUBLE AS period_days
    FROM est_src_vital_events v
    WHERE period_start IS NOT NULL AND period_end IS NOT NULL AND period_end >= period_start
      AND coalesce(deaths, 0) > 0
),
amt AS (
    SELECT ev.ev_id, e.extract_date, ev.sex, ev.age_band, ev.area_code, ev.area_type,
           ev.deaths * greatest(0, date_diff('day', greatest(ev.period_start, {{ base_date }} + 1),
                                                 least(ev.period_end, e.extract_date)) + 1)
               / ev.period_days AS amount
    FROM ev CROSS JOIN est_extracts e
),
amt_sex AS (
    SELECT a.ev_id, a.extract_date, s.sex, a.age_band, a.area_code, a.area_type,
           a.amount * CASE WHEN a.sex IN ('M', 'F') THEN 1.0 ELSE 0.5 END AS amount
    FROM amt a
    JOIN (VALUES ('M'), ('F')) AS s(sex) ON a.sex NOT IN ('M', 'F') OR a.sex = s.sex
    WHERE a.amount > 0
),
base_band AS (
    SELECT lsoa_code, age_band, sum(population) AS population
    FROM est_base GROUP BY lsoa_code, age_band
),
base_all AS (
    SELECT lsoa_code, sum(population) AS population FROM est_base GROUP BY lsoa_code
),
targets AS (
    SELECT a.ev_id, a.extract_date, a.sex, a.age_band, a.area_code AS lsoa_code, a.amount, 1.0 AS w
    FROM amt_sex a
    WHERE a.area_type = 'lsoa' AND a.area_code IN (SELECT lsoa_code FROM est_base)
    UNION ALL
    SELECT a.ev_id, a.extract_date, a.sex, a.age_band, g.lsoa_code, a.amount,
           g.ward_share * (coalesce(bb.population, ba.population, 0) + 1e-9) AS w
    FROM amt_sex a
    JOIN est_lsoa_geo g ON g.ward_code = a.area_code AND g.lsoa_code IN (SELECT lsoa_code FROM est_base)
    LEFT JOIN base_band bb ON a.age_band IS NOT NULL AND bb.lsoa_code = g.lsoa_code AND bb.age_band = a.age_band
    LEFT JOIN base_all ba ON a.age_band IS NULL AND ba.lsoa_code = g.lsoa_code
    WHERE a.area_type = 'ward'
),
to_lsoa AS (
    SELECT ev_id, extract_date, sex, age_band, lsoa_code,
           amount * w / sum(w) OVER (PARTITION BY ev_id, extract_date, sex) AS amount
    FROM targets
),
banded AS (
    SELECT lsoa_code, extract_date, sex, age_band, amount FROM to_lsoa WHERE age_band IS NOT NULL
    UNION ALL
    SELECT t.lsoa_code, t.extract_date, t.sex, b.age_band,
           t.amount * (b.population + 1e-9)
               / sum(b.population + 1e-9) OVER (PARTITION BY t.ev_id, t.extract_date, t.sex, t.lsoa_code)
    FROM to_lsoa t
    JOIN base_band b ON b.lsoa_code = t.lsoa_code
    WHERE t.age_band IS NULL
)
SELECT lsoa_code, extract_date, sex, age_band, sum(amount) AS deaths
FROM banded
GROUP BY lsoa_code, extract_date, sex, age_band
