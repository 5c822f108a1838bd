-- Pupil mobility between consecutive school censuses, per home LSOA, assigned to the GP extract
-- period (prev_date, extract_date] in which the later census falls.
-- A joiner is a pupil on a school's roll at one census who was not on that school's roll at the
-- previous census; a leaver the reverse. Normal points of entry and exit are not mobility:
-- joining Reception, Year 7 or Year 12 and leaving Year 6, 11, 13 or 14 across a 1 September,
-- and nursery (N1/N2) joining or leaving at any time. Joiners are placed by their new home LSOA,
-- leavers by their old one. pupil_years is the exposure: pupils at the earlier census x years
-- between the two censuses.
WITH sc AS (
    SELECT census_date, pupil_id, urn, lsoa_code,
           CASE WHEN nc_year IN ('R', 'N1', 'N2', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14') THEN nc_year  -- already canonical
                WHEN regexp_matches(upper(trim(CAST(nc_year AS VARCHAR))), '^Y?[0-9]+$')
                THEN CAST(CAST(regexp_extract(upper(trim(CAST(nc_year AS VARCHAR))), '([0-9]+)', 1) AS INTEGER) AS VARCHAR)
                ELSE upper(trim(CAST(nc_year AS VARCHAR))) END AS nc_year
    FROM est_src_school_census
    WHERE census_date IS NOT NULL AND pupil_id IS NOT NULL
),
cen AS (
    SELECT census_date, lag(census_date) OVER (ORDER BY census_date) AS prev_census
    FROM (SELECT DISTINCT census_date FROM sc)
),
pairs AS (
    SELECT c.census_date, c.prev_census,
           (make_date(year(c.census_date), 9, 1) > c.prev_census AND make_date(year(c.census_date), 9, 1) <= c.census_date)
           OR (make_date(year(c.census_date) - 1, 9, 1) > c.prev_census
               AND make_date(year(c.census_date) - 1, 9, 1) <= c.census_date) AS spans_september,
           date_diff('day', c.prev_census, c.census_date) / 365.25 AS years,
           e.extract_date
    FROM cen c
    JOIN est_extracts e ON e.k > 0 AND c.census_date > e.prev_date AND c.census_date <= e.extract_date
    WHERE c.prev_census IS NOT NULL
),
-- each pair of censuses seen from both ends: a pupil on a roll at one end and not on that school's
-- roll at the other joined (seen at the later census) or left (seen at the earlier one)
sides AS (
    SELECT extract_date, spans_september, census_date AS at_census, prev_census AS other_census, 'joiner' AS kind
    FROM pairs
    UNION ALL
    SELECT extract_date, spans_september, prev_census, census_date, 'leaver' FROM pairs
),
changes AS (
    SELECT s.extract_date, s.kind, x.lsoa_code,
           CASE WHEN x.nc_year IN ('N1', 'N2')
                  OR (s.spans_september AND s.kind = 'joiner' AND x.nc_year IN ('R', '0', '7', '12'))
                  OR (s.spans_september AND s.kind = 'leaver' AND x.nc_year IN ('6', '11', '13', '14'))
                THEN 0 ELSE 1 END AS mobile
    FROM sides s
    JOIN sc x ON x.census_date = s.at_census
    WHERE NOT EXISTS (SELECT 1 FROM sc o
                      WHERE o.census_date = s.other_census AND o.pupil_id = x.pupil_id AND o.urn = x.urn)
),
exposure AS (
    SELECT p.extract_date, prev.lsoa_code, sum(p.years) AS pupil_years, count(*) AS pupils
    FROM pairs p
    JOIN sc prev ON prev.census_date = p.prev_census
    GROUP BY p.extract_date, prev.lsoa_code
),
m AS (
    SELECT extract_date, lsoa_code,
           CAST(sum(CASE WHEN kind = 'joiner' THEN mobile ELSE 0 END) AS DOUBLE) AS joiners,
           CAST(sum(CASE WHEN kind = 'leaver' THEN mobile ELSE 0 END) AS DOUBLE) AS leavers
    FROM changes
    GROUP BY extract_date, lsoa_code
)
SELECT coalesce(x.lsoa_code, m.lsoa_code) AS lsoa_code,
       coalesce(x.extract_date, m.extract_date) AS extract_date,
       coalesce(m.joiners, 0) AS joiners,
       coalesce(m.leavers, 0) AS leavers,
       coalesce(m.joiners, 0) + coalesce(m.leavers, 0) AS pupil_moves,
       CAST(coalesce(x.pupil_years, 0) AS DOUBLE) AS pupil_years
FROM exposure x
FULL JOIN m ON m.lsoa_code = x.lsoa_code AND m.extract_date = x.extract_date
WHERE coalesce(x.lsoa_code, m.lsoa_code) IN (SELECT lsoa_code FROM est_base)
