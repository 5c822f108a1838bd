-- Pupil mobility: pupils joining or leaving a school outside the normal points of entry in each
-- period (population_flows), by home LSOA, per pupil living in the LSOA at the latest school
-- census in the period. Periods without a census pair (no moves measured) are left out.
WITH pupils AS (
    SELECT lsoa_code, census_date, count(*) AS pupils
    FROM ind_basket_pupils WHERE lsoa_code IS NOT NULL
    GROUP BY lsoa_code, census_date
)
SELECT f.lsoa_code AS area_code, 'lsoa' AS area_type, f.period_start, f.period_end, 'All' AS breakdown,
       f.pupil_moves AS numerator, p.pupils AS denominator
FROM population_flows f
JOIN pupils p ON p.lsoa_code = f.lsoa_code
 AND p.census_date = (SELECT max(c.census_date) FROM pupils c
                      WHERE c.census_date >= f.period_start AND c.census_date <= f.period_end)
WHERE f.pupil_years > 0
