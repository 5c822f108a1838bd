-- GP registrations from abroad (Flag 4) in each period between GP extracts, per LSOA, over the
-- LSOA's estimated population at the end of the period (population_flows, population_estimates).
SELECT f.lsoa_code AS area_code, 'lsoa' AS area_type, f.period_start, f.period_end, 'All' AS breakdown,
       f.from_abroad AS numerator, p.population AS denominator
FROM population_flows f
JOIN ind_basket_population p ON p.area_code = f.lsoa_code AND p.reference_date = f.period_end
