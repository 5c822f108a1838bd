-- The flows later stages use (the local basket's churn, migration and pupil-mobility indicators),
-- published so that nothing downstream reads the est_* working tables. One row per LSOA and
-- period between consecutive GP extracts (period_start = the day after the previous extract,
-- period_end = the extract date):
--   registrations     joined a practice in the area (not births), of which from_abroad (Flag 4)
--   deregistrations   left a practice in the area (not deaths, not list cleaning)
--   list_cleaning     removed in list-cleaning exercises (ghosts, not people leaving)
--   pupil_joiners, pupil_leavers, pupil_moves, pupil_years   pupil mobility and its exposure
--   asylum_allocated  asylum seekers newly housed
--   residents         the base population the rates of turbulence were scaled by
--   turbulence        the period's turbulence score (moves per 1,000 residents a year)
WITH gp AS (
    SELECT lsoa_code, extract_date, sum(registrations) AS registrations, sum(from_abroad) AS from_abroad,
           sum(deregistrations) AS deregistrations, sum(cleaning) AS list_cleaning
    FROM est_gp_flows
    GROUP BY lsoa_code, extract_date
)
SELECT t.lsoa_code,
       date_add(e.prev_date, INTERVAL 1 DAY) AS period_start,
       e.extract_date AS period_end,
       coalesce(gp.registrations, 0.0) AS registrations,
       coalesce(gp.from_abroad, 0.0) AS from_abroad,
       coalesce(gp.deregistrations, 0.0) AS deregistrations,
       coalesce(gp.list_cleaning, 0.0) AS list_cleaning,
       coalesce(s.joiners, 0.0) AS pupil_joiners,
       coalesce(s.leavers, 0.0) AS pupil_leavers,
       coalesce(s.pupil_moves, 0.0) AS pupil_moves,
       coalesce(s.pupil_years, 0.0) AS pupil_years,
       coalesce(t.asylum_allocated, 0.0) AS asylum_allocated,
       t.residents,
       t.period_score AS turbulence
FROM est_turbulence t
JOIN est_extracts e ON e.extract_date = t.extract_date AND e.k > 0
LEFT JOIN gp ON gp.lsoa_code = t.lsoa_code AND gp.extract_date = t.extract_date
LEFT JOIN est_school_moves s ON s.lsoa_code = t.lsoa_code AND s.extract_date = t.extract_date
