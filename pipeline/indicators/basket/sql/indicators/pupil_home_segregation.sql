-- The same pupils as school segregation, by the LSOA they live in, so that school and residential
-- segregation are measured on one population (Burgess, Wilson & Lupton 2005, Urban Studies 42(7)).
-- Pupils are counted once per home LSOA x characteristics first, then spread over the breakdowns
-- (as school_segregation.sql): the breakdowns multiply combinations, not pupil rows.
WITH counts AS (
    SELECT census_date, la_code, lsoa_code, ethnic_group, fsm_eligible, eal, count(*) AS n
    FROM ind_basket_pupils
    WHERE la_code IS NOT NULL AND lsoa_code IS NOT NULL
    GROUP BY census_date, la_code, lsoa_code, ethnic_group, fsm_eligible, eal
),
groups AS (
    SELECT census_date, la_code, lsoa_code, 'Ethnic group: ' || g.ethnic_group AS breakdown,
           CASE WHEN c.ethnic_group = g.ethnic_group THEN n ELSE 0 END AS member, n
    FROM counts c
    CROSS JOIN (SELECT DISTINCT ethnic_group FROM ind_basket_pupils WHERE ethnic_group IS NOT NULL) g
    WHERE c.ethnic_group IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, lsoa_code, 'Free school meals: eligible', CASE WHEN fsm_eligible THEN n ELSE 0 END, n
    FROM counts WHERE fsm_eligible IS NOT NULL
    UNION ALL
    SELECT census_date, la_code, lsoa_code, 'First language: other than English', CASE WHEN eal THEN n ELSE 0 END, n
    FROM counts WHERE eal IS NOT NULL
)
SELECT la_code AS area_code, 'la' AS area_type, census_date AS period_start, census_date AS period_end,
       breakdown, lsoa_code AS unit_code, sum(member) AS group_count, CAST(sum(n) AS BIGINT) AS unit_total
FROM groups
GROUP BY la_code, census_date, breakdown, lsoa_code
