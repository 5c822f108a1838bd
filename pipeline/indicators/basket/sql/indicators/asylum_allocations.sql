-- Asylum seekers newly housed in each period, per LSOA, over its estimated population.
SELECT f.lsoa_code AS area_code, 'lsoa' AS area_type, f.period_start, f.period_end, 'All' AS breakdown,
       f.asylum_allocated AS numerator, p.population AS denominator
FROM population_flows f
JOIN ind_basket_population p ON p.area_code = f.lsoa_code AND p.reference_date = f.period_end
