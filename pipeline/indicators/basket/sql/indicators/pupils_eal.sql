-- Pupils whose first language is known to be other than English, as a share of pupils whose first
-- language is recorded, by home LSOA, at each school census.
SELECT lsoa_code AS area_code, 'lsoa' AS area_type, census_date AS period_start, census_date AS period_end,
       'All' AS breakdown, sum(CASE WHEN eal THEN 1 ELSE 0 END) AS numerator, count(*) AS denominator
FROM ind_basket_pupils
WHERE eal IS NOT NULL AND lsoa_code IS NOT NULL
GROUP BY lsoa_code, census_date
