-- Incidents by category (hate crime, community tension, ...) per ward and period, per 1,000
-- estimated residents at the latest estimate on or before the period's end. One indicator per
-- category (the `variant` column): incidents_<category>.
SELECT i.area_code, 'ward' AS area_type, i.period_start, i.period_end, 'All' AS breakdown,
       lower(i.category) AS variant, sum(i.count) AS numerator, max(p.population) AS denominator
FROM incidents i
JOIN ind_basket_population p ON p.area_code = i.area_code
 AND p.reference_date = (SELECT max(q.reference_date) FROM ind_basket_population q
                         WHERE q.area_code = i.area_code AND q.reference_date <= i.period_end)
WHERE i.area_code IN (SELECT ward_code FROM lsoa_lookup)
GROUP BY i.area_code, i.period_start, i.period_end, lower(i.category)
