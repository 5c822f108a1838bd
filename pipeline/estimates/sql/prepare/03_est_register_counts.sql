-- The register counted in one pass, three ways: one scan of est_gp_patients feeds the three
-- aggregations of GROUPING SETS, which later steps read off instead of scanning the register again
-- (at national scale each scan of the view reads 124 million rows). counted_by names the grouping:
--   'age'       LSOA x extract x single year of age (0 ... 90, 90 = 90+)   -> est_gp_ages
--   'ethnic'    LSOA x extract x 5-year band x census ethnic group       -> est_ethnic_counts
--   'practice'  practice x extract (the practice's list size)            -> est_gp_flows (list cleaning)
-- Patients are counted by sex as recorded: m, f and u (not known / indeterminate). The columns a
-- grouping does not use are NULL in its rows.
WITH p AS (
    SELECT lsoa_code, practice_code, extract_date, least(age, 90) AS age, age_band, ethnic_group, sex
    FROM est_gp_patients
)
SELECT
    CASE WHEN GROUPING(practice_code) = 0 THEN 'practice'
         WHEN GROUPING(ethnic_group) = 0 THEN 'ethnic'
         ELSE 'age' END AS counted_by,
    lsoa_code, practice_code, extract_date, age, age_band, ethnic_group,
    count(*) FILTER (WHERE sex = 'M') AS m,
    count(*) FILTER (WHERE sex = 'F') AS f,
    count(*) FILTER (WHERE sex = 'U') AS u
FROM p
GROUP BY GROUPING SETS (
    (lsoa_code, extract_date, age),
    (lsoa_code, extract_date, age_band, ethnic_group),
    (practice_code, extract_date)
)
