-- Flows on and off the list between consecutive extracts (prev_date, extract_date], per LSOA x
-- sex x band (age at extract_date): registrations other than births, of which from abroad
-- (Flag 4), deregistrations other than deaths and list cleaning, and list-cleaning removals.
--
-- With gp_movements (flows_from_movements = TRUE) the events and their reasons are read directly;
-- sex and date of birth come from the patient's latest snapshot. Without it, consecutive
-- snapshots are compared by patient_id: joiners born before the previous extract are
-- registrations; leavers are deregistrations, except that a practice whose leavers in a period
-- exceed cleaning_threshold x its usual quarterly leaving rate (the larger of its own median over
-- earlier periods and all practices' median up to the extract), by more than one percentage point, is taken to have cleaned its list: the excess share of its leavers counts as
-- list cleaning (a burst of ghost removals, not people leaving).
-- Unknown sex is split equally; an unknown age is spread over bands by the LSOA's list.
WITH ex AS (SELECT extract_date, prev_date FROM est_extracts WHERE k > 0),
attr AS (
    SELECT patient_id,
           arg_max(sex, extract_date) AS sex,
           arg_max(date_of_birth, extract_date) AS dob,
           arg_max(lsoa_code, extract_date) AS lsoa_code
    FROM est_gp_patients
    WHERE {{ flows_from_movements }}  -- only the patients with movement records need them
      AND patient_id IN (SELECT patient_id FROM est_src_gp_movements)
    GROUP BY patient_id
),
mv AS (
    SELECT coalesce(m.lsoa_code, a.lsoa_code) AS lsoa_code, ex.extract_date, a.sex, a.dob,
           CASE WHEN lower(m.event) = 'registration' AND coalesce(lower(m.reason), '') <> 'birth' THEN 1.0 ELSE 0.0 END AS reg,
           CASE WHEN lower(m.event) = 'registration' AND lower(m.reason) = 'from_abroad' THEN 1.0 ELSE 0.0 END AS abroad,
           CASE WHEN lower(m.event) = 'deregistration'
                 AND coalesce(lower(m.reason), '') NOT IN ('death', 'list_cleaning') THEN 1.0 ELSE 0.0 END AS dereg,
           CASE WHEN lower(m.event) = 'deregistration' AND lower(m.reason) = 'list_cleaning' THEN 1.0 ELSE 0.0 END AS clean
    FROM est_src_gp_movements m
    JOIN ex ON m.event_date > ex.prev_date AND m.event_date <= ex.extract_date
    LEFT JOIN attr a ON a.patient_id = m.patient_id
    WHERE {{ flows_from_movements }}
),
-- consecutive snapshots matched on patient_id alone, in one FULL JOIN of the ids: a patient on the list at
-- an extract and not at the one before joined, one on the list before and not at the extract left. Only
-- the ids are joined (at national scale a join carrying every patient's columns, 62 million a side,
-- outgrew the memory limit and spilled); the unmatched patients' columns (about 2% of the rows) are then
-- fetched by their unique key (extract_date, patient_id) from the register itself, with the sex and
-- from_abroad of est_gp_patients (reading the view again would redo its per-row work for every patient).
-- The ids come from the register too, with est_gp_patients' filter written out (an LSOA, and a date of birth
-- on or before the extract: an age ref_age holds): the view's age, band and ethnic group are not needed.
-- The join holds the period and the id alone (a row's date follows from the period and the side it came from):
-- at national scale the 62 million rows of one side then fit DuckDB's 4GB limit, where with the row's date as well
-- the join spilled 182 MB (15 MB now; benchmarks/results/estimates_profile_lead25.md).
unmatched AS (
    SELECT DISTINCT coalesce(cur.period, prev.period) AS period, coalesce(cur.patient_id, prev.patient_id) AS patient_id,
           prev.period IS NULL AS joined
    FROM (SELECT ex.extract_date AS period, g.patient_id
          FROM est_src_gp_register g JOIN ex ON g.extract_date = ex.extract_date
          WHERE NOT {{ flows_from_movements }} AND g.lsoa_code IS NOT NULL AND g.date_of_birth <= g.extract_date) cur
    FULL JOIN (SELECT ex.extract_date AS period, g.patient_id
               FROM est_src_gp_register g JOIN ex ON g.extract_date = ex.prev_date
               WHERE NOT {{ flows_from_movements }} AND g.lsoa_code IS NOT NULL AND g.date_of_birth <= g.extract_date) prev
        ON prev.period = cur.period AND prev.patient_id = cur.patient_id
    WHERE cur.period IS NULL OR prev.period IS NULL
),
unmatched_rows AS (  -- a joiner's row at the extract, a leaver's at the extract before
    SELECT u.period, u.joined, ex.prev_date, g.practice_code, g.lsoa_code,
           CASE WHEN upper(g.sex) IN ('M', 'F') THEN upper(g.sex) ELSE 'U' END AS sex,
           g.date_of_birth, coalesce(g.from_abroad, FALSE) AS from_abroad
    FROM unmatched u
    JOIN ex ON ex.extract_date = u.period
    JOIN est_src_gp_register g ON g.patient_id = u.patient_id
     AND g.extract_date = CASE WHEN u.joined THEN u.period ELSE ex.prev_date END
),
joiners AS (
    SELECT lsoa_code, period AS extract_date, sex, date_of_birth AS dob,
           1.0 AS reg, CASE WHEN from_abroad THEN 1.0 ELSE 0.0 END AS abroad, 0.0 AS dereg, 0.0 AS clean
    FROM unmatched_rows
    WHERE joined AND date_of_birth <= prev_date
),
leavers AS (
    SELECT practice_code, lsoa_code, period AS extract_date, sex, date_of_birth AS dob
    FROM unmatched_rows
    WHERE NOT joined
),
practice_list AS (  -- the list size, from the register's one counting pass (est_register_counts)
    SELECT practice_code, extract_date, m + f + u AS list_size FROM est_register_counts
    WHERE counted_by = 'practice' AND NOT {{ flows_from_movements }}
),
practice_rate AS (
    SELECT l.practice_code, l.extract_date, count(*) / any_value(pl.list_size) AS rate
    FROM leavers l
    JOIN ex ON ex.extract_date = l.extract_date
    JOIN practice_list pl ON pl.practice_code = l.practice_code AND pl.extract_date = ex.prev_date
    GROUP BY l.practice_code, l.extract_date
),
-- The usual rate at extract t uses periods up to t only, so no flow is revised when later extracts
-- arrive: the practice's median over its earlier periods, and every practice's median up to t
-- (medians as aggregates over a self-join: median(...) OVER is not a window function on every engine).
practice_median AS (
    SELECT r.practice_code, r.extract_date, median(h.rate) AS median_rate
    FROM practice_rate r
    JOIN practice_rate h ON h.practice_code = r.practice_code AND h.extract_date < r.extract_date
    GROUP BY r.practice_code, r.extract_date
),
overall_median AS (
    SELECT d.extract_date, median(h.rate) AS median_rate
    FROM (SELECT DISTINCT extract_date FROM practice_rate) d
    JOIN practice_rate h ON h.extract_date <= d.extract_date
    GROUP BY d.extract_date
),
practice_usual AS (
    SELECT r.practice_code, r.extract_date, r.rate,
           greatest(coalesce(m.median_rate, o.median_rate), o.median_rate) AS usual
    FROM practice_rate r
    LEFT JOIN practice_median m ON m.practice_code = r.practice_code AND m.extract_date = r.extract_date
    JOIN overall_median o ON o.extract_date = r.extract_date
),
excess AS (
    SELECT practice_code, extract_date,
           CASE WHEN rate > {{ cleaning_threshold }} * usual AND rate - usual > 0.01
                THEN (rate - usual) / rate ELSE 0.0 END AS share
    FROM practice_usual
),
leaver_flows AS (
    SELECT l.lsoa_code, l.extract_date, l.sex, l.dob,
           0.0 AS reg, 0.0 AS abroad,
           1.0 - coalesce(x.share, 0.0) AS dereg,
           coalesce(x.share, 0.0) AS clean
    FROM leavers l
    LEFT JOIN excess x ON x.practice_code = l.practice_code AND x.extract_date = l.extract_date
),
flows AS (
    SELECT lsoa_code, extract_date, sex, dob, reg, abroad, dereg, clean FROM mv
    UNION ALL SELECT lsoa_code, extract_date, sex, dob, reg, abroad, dereg, clean FROM joiners
    UNION ALL SELECT lsoa_code, extract_date, sex, dob, reg, abroad, dereg, clean FROM leaver_flows
),
aged AS (
    SELECT f.lsoa_code, f.extract_date, f.sex, f.reg, f.abroad, f.dereg, f.clean,
           year(f.extract_date) - year(f.dob)
             - CASE WHEN month(f.extract_date) * 100 + day(f.extract_date)
                         < month(f.dob) * 100 + day(f.dob) THEN 1 ELSE 0 END AS age
    FROM flows f
    WHERE f.lsoa_code IN (SELECT lsoa_code FROM est_base)
),
sexed AS (
    SELECT a.lsoa_code, a.extract_date, s.sex,
           r.age_band,
           CASE WHEN coalesce(a.sex, 'U') IN ('M', 'F') THEN 1.0 ELSE 0.5 END AS w,
           a.reg, a.abroad, a.dereg, a.clean
    FROM aged a
    JOIN (VALUES ('M'), ('F')) AS s(sex) ON coalesce(a.sex, 'U') NOT IN ('M', 'F') OR a.sex = s.sex
    LEFT JOIN ref_age r ON r.age = least(a.age, 120)
),
summed AS (
    SELECT lsoa_code, extract_date, sex, age_band,
           sum(w * reg) AS registrations, sum(w * abroad) AS from_abroad,
           sum(w * dereg) AS deregistrations, sum(w * clean) AS cleaning
    FROM sexed
    GROUP BY lsoa_code, extract_date, sex, age_band
),
banded AS (
    SELECT * FROM summed WHERE age_band IS NOT NULL
    UNION ALL
    SELECT s.lsoa_code, s.extract_date, s.sex, p.age_band,
           s.registrations * p.share, s.from_abroad * p.share, s.deregistrations * p.share, s.cleaning * p.share
    FROM summed s
    JOIN (SELECT lsoa_code, extract_date, sex, age_band,
                 (list_count + 1e-9) / sum(list_count + 1e-9) OVER (PARTITION BY lsoa_code, extract_date, sex) AS share
          FROM est_cells) p
      ON p.lsoa_code = s.lsoa_code AND p.extract_date = s.extract_date AND p.sex = s.sex
    WHERE s.age_band IS NULL
)
SELECT lsoa_code, extract_date, sex, age_band,
       sum(registrations) AS registrations, sum(from_abroad) AS from_abroad,
       sum(deregistrations) AS deregistrations, sum(cleaning) AS cleaning
FROM banded
GROUP BY lsoa_code, extract_date, sex, age_band
