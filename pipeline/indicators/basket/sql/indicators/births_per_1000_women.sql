-- Maternity demand: live births in each period per 1,000 women aged 15-44, by LSOA of the
-- mother's residence (vital_events), over the latest estimate on or before the period's end.
SELECT v.area_code, 'lsoa' AS area_type, v.period_start, v.period_end, 'All' AS breakdown,
       sum(v.births) AS numerator, max(p.women_15_44) AS denominator
FROM vital_events v
JOIN ind_basket_population p ON p.area_code = v.area_code
 AND p.reference_date = (SELECT max(q.reference_date) FROM ind_basket_population q
                         WHERE q.area_code = v.area_code AND q.reference_date <= v.period_end)
WHERE v.area_type = 'lsoa' AND v.births IS NOT NULL
GROUP BY v.area_code, v.period_start, v.period_end
