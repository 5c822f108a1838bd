-- Population churn: GP registrations plus deregistrations (moves in and out, not births, deaths
-- or list cleaning) in each period, per LSOA, over its estimated population at the period's end.
SELECT f.lsoa_code AS area_code, 'lsoa' AS area_type, f.period_start, f.period_end, 'All' AS breakdown,
       f.registrations + f.deregistrations AS numerator, p.population AS denominator
FROM population_flows f
JOIN ind_basket_population p ON p.area_code = f.lsoa_code AND p.reference_date = f.period_end
