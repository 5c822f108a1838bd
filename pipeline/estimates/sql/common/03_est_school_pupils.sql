-- Pupils of compulsory school age (national curriculum years R-11) on each school census, by home
-- LSOA: what the list's children are compared with to measure how the list's inflation changes
-- (school_signal.py). Only LSOAs with a base population; none when there is no school census.
WITH sc AS (
    SELECT census_date, pupil_id, lsoa_code,
           CASE WHEN nc_year IN ('R', 'N1', 'N2', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14') THEN nc_year  -- already canonical
                WHEN regexp_matches(upper(trim(CAST(nc_year AS VARCHAR))), '^Y?[0-9]+$')
                THEN CAST(CAST(regexp_extract(upper(trim(CAST(nc_year AS VARCHAR))), '([0-9]+)', 1) AS INTEGER) AS VARCHAR)
                ELSE upper(trim(CAST(nc_year AS VARCHAR))) END AS nc_year
    FROM est_src_school_census
    WHERE census_date IS NOT NULL AND pupil_id IS NOT NULL AND lsoa_code IS NOT NULL
)
SELECT census_date, lsoa_code, CAST(count(DISTINCT pupil_id) AS DOUBLE) AS pupils
FROM sc
WHERE nc_year IN ('R', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11')
  AND lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
GROUP BY census_date, lsoa_code
