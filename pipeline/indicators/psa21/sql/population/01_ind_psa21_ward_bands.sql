-- Ward population by sex and ONS 5-year band at the survey's fieldwork date, interpolated
-- linearly between the estimates of the extracts either side of it ({{ date_before }} and
-- {{ date_after }}; {{ fraction }} of the way from the first to the second).
SELECT
    b.area_code AS ward_code,
    b.sex,
    b.age_band,
    (1 - {{ fraction }}) * b.estimate + {{ fraction }} * coalesce(a.estimate, b.estimate) AS population
FROM population_estimates AS b
LEFT JOIN population_estimates AS a
    ON a.area_code = b.area_code AND a.sex = b.sex AND a.age_band = b.age_band
   AND a.reference_date = {{ date_after }}
WHERE b.reference_date = {{ date_before }}
  AND b.area_type = 'ward'
  AND b.sex IN ('M', 'F')
  AND b.age_band <> 'All'
