-- Pupils of each group in each school (the units of school segregation), across the LA's schools,
-- all phases and by phase, at each census: ethnic groups (each against the rest of the pupils
-- whose ethnicity is recorded), free school meals, English as an additional language.
WITH groups AS (
    SELECT census_date, la_code, urn, phase, 'Ethnic group: ' || g.ethnic_group AS grp,
           CASE WHEN p.ethnic_group = g.ethnic_group THEN 1 ELSE 0 END AS member
    FROM ind_basket_pupils p
    CROSS JOIN (SELECT DISTINCT ethnic_group FROM ind_basket_pupils WHERE ethnic_group IS NOT NULL) g
    WHERE p.ethnic_group IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, urn, phase, 'Free school meals: eligible', CASE WHEN fsm_eligible THEN 1 ELSE 0 END
    FROM ind_basket_pupils WHERE fsm_eligible IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, urn, phase, 'First language: other than English', CASE WHEN eal THEN 1 ELSE 0 END
    FROM ind_basket_pupils WHERE eal IS NOT NULL
),
phased AS (
    SELECT census_date, la_code, urn AS unit_code, grp AS breakdown, member FROM groups
    UNION ALL
    SELECT census_date, la_code, urn, grp || '; Phase: ' || phase, member FROM groups
    WHERE phase IN ('primary', 'secondary')
)
SELECT la_code AS area_code, 'la' AS area_type, census_date AS period_start, census_date AS period_end,
       breakdown, unit_code, sum(member) AS group_count, count(*) AS unit_total
FROM phased
WHERE la_code IS NOT NULL
GROUP BY la_code, census_date, breakdown, unit_code
