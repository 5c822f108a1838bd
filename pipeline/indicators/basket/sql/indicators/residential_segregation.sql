-- Residents of each ethnic group in each LSOA (the units of residential segregation), from the
-- estimated composition (ethnicity_estimates, LSOA rows) on each estimate date, rounded to whole
-- people so that random allocation can deal them out; each group against everyone else.
WITH counts AS (
    SELECT e.reference_date, e.area_code AS lsoa_code, e.ethnic_group, round(e.estimate) AS people
    FROM ethnicity_estimates e
    WHERE e.area_type = 'lsoa' AND e.estimate IS NOT NULL
),
totals AS (
    SELECT reference_date, lsoa_code, sum(people) AS unit_total FROM counts GROUP BY reference_date, lsoa_code
),
la AS (SELECT DISTINCT lsoa_code, la_code FROM lsoa_lookup)
SELECT la.la_code AS area_code, 'la' AS area_type, c.reference_date AS period_start, c.reference_date AS period_end,
       'Ethnic group: ' || c.ethnic_group AS breakdown, c.lsoa_code AS unit_code, c.people AS group_count,
       t.unit_total
FROM counts c
JOIN totals t ON t.reference_date = c.reference_date AND t.lsoa_code = c.lsoa_code
JOIN la ON la.lsoa_code = c.lsoa_code
