-- The same pupils as school segregation, by the LSOA they live in, so that school and residential
-- segregation are measured on one population (Burgess, Wilson & Lupton 2005, Urban Studies 42(7)).
WITH groups AS (
    SELECT census_date, la_code, lsoa_code, 'Ethnic group: ' || g.ethnic_group AS breakdown,
           CASE WHEN p.ethnic_group = g.ethnic_group THEN 1 ELSE 0 END AS member
    FROM ind_basket_pupils p
    CROSS JOIN (SELECT DISTINCT ethnic_group FROM ind_basket_pupils WHERE ethnic_group IS NOT NULL) g
    WHERE p.ethnic_group IS NOT NULL AND p.lsoa_code IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, lsoa_code, 'Free school meals: eligible', CASE WHEN fsm_eligible THEN 1 ELSE 0 END
    FROM ind_basket_pupils WHERE fsm_eligible IS NOT NULL AND lsoa_code IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, lsoa_code, 'First language: other than English', CASE WHEN eal THEN 1 ELSE 0 END
    FROM ind_basket_pupils WHERE eal IS NOT NULL AND lsoa_code IS NOT NULL
)
SELECT la_code AS area_code, 'la' AS area_type, census_date AS period_start, census_date AS period_end,
       breakdown, lsoa_code AS unit_code, sum(member) AS group_count, count(*) AS unit_total
FROM groups
WHERE la_code IS NOT NULL
GROUP BY la_code, census_date, breakdown, lsoa_code
