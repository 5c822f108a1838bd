-- Pupils of each group in each school (the units of school segregation), across the LA's schools,
-- all phases and by phase, at each census: ethnic groups (each against the rest of the pupils
-- whose ethnicity is recorded), free school meals, English as an additional language.
-- Pupils are counted once per school x phase x characteristics first, then spread over the
-- breakdowns: the breakdowns multiply combinations, not pupil rows (8 million pupils nationally).
WITH counts AS (
    SELECT census_date, la_code, urn, phase, ethnic_group, fsm_eligible, eal, count(*) AS n
    FROM ind_basket_pupils
    WHERE la_code IS NOT NULL
    GROUP BY census_date, la_code, urn, phase, ethnic_group, fsm_eligible, eal
),
groups AS (
    SELECT census_date, la_code, urn, phase, 'Ethnic group: ' || g.ethnic_group AS grp,
           CASE WHEN c.ethnic_group = g.ethnic_group THEN n ELSE 0 END AS member, n
    FROM counts c
    CROSS JOIN (SELECT DISTINCT ethnic_group FROM ind_basket_pupils WHERE ethnic_group IS NOT NULL) g
    WHERE c.ethnic_group IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, urn, phase, 'Free school meals: eligible', CASE WHEN fsm_eligible THEN n ELSE 0 END, n
    FROM counts WHERE fsm_eligible IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, urn, phase, 'First language: other than English', CASE WHEN eal THEN n ELSE 0 END, n
    FROM counts WHERE eal IS NOT NULL
),
phased AS (
    SELECT census_date, la_code, urn AS unit_code, grp AS breakdown, member, n FROM groups
    UNION ALL
    SELECT census_date, la_code, urn, grp || '; Phase: ' || phase, member, n FROM groups
    WHERE phase IN ('primary', 'secondary')
)
SELECT la_code AS area_code, 'la' AS area_type, census_date AS period_start, census_date AS period_end,
       breakdown, unit_code, sum(member) AS group_count, CAST(sum(n) AS BIGINT) AS unit_total
FROM phased
GROUP BY la_code, census_date, breakdown, unit_code
