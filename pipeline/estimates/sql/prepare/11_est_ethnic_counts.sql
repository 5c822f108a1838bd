-- Recorded ethnicity per LSOA x extract x sex x band x census group: GP registrations (NHS ethnic
-- category) plus, for school ages, pupils of the latest school census on or before the extract
-- date (DfE ethnicity code); both grouped by the shared vocabulary (ref_ethnic_code). School years map to bands
-- by age at the start of the year: nursery 0-4, Reception-Year 4 5-9, Years 5-9 10-14,
-- Years 10-14 15-19. Unknown sex on the GP list is split equally. The register's patients come
-- counted (est_register_counts, its 'ethnic' grouping: the register is not scanned again); the
-- pupils are counted here, and joined to them per LSOA x extract x band x group.
WITH base_lsoa AS (SELECT DISTINCT lsoa_code FROM est_base),  -- the LSOAs estimated (est_base: by sex x band)
sc AS (
    SELECT census_date, lsoa_code, upper(sex) AS sex,
           CASE WHEN nc_year IN ('R', 'N1', 'N2') THEN (CASE WHEN nc_year = 'R' THEN 0 ELSE -1 END)  -- already canonical
                WHEN nc_year IN ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14')
                THEN CAST(nc_year AS INTEGER)
                WHEN regexp_matches(upper(trim(CAST(nc_year AS VARCHAR))), '^Y?[0-9]+$')
                THEN CAST(regexp_extract(upper(trim(CAST(nc_year AS VARCHAR))), '([0-9]+)', 1) AS INTEGER)
                WHEN upper(trim(CAST(nc_year AS VARCHAR))) = 'R' THEN 0
                ELSE -1 END AS year_num,
           coalesce((SELECT r.ethnic_group FROM ref_ethnic_code r WHERE r.scheme = 'dfe' AND r.code = upper(ethnicity)),
                    'Not stated') AS ethnic_group
    FROM est_src_school_census
    WHERE upper(sex) IN ('M', 'F') AND lsoa_code IN (SELECT lsoa_code FROM base_lsoa)
),
latest AS (
    SELECT e.extract_date, max(c.census_date) AS census_date
    FROM est_extracts e
    JOIN (SELECT DISTINCT census_date FROM sc) c ON c.census_date <= e.extract_date
    GROUP BY e.extract_date
),
school AS (
    SELECT sc.lsoa_code, l.extract_date, sc.sex,
           CASE WHEN sc.year_num < 0 THEN '0-4'
                WHEN sc.year_num <= 4 THEN '5-9'
                WHEN sc.year_num <= 9 THEN '10-14'
                ELSE '15-19' END AS age_band,
           sc.ethnic_group
    FROM sc JOIN latest l ON l.census_date = sc.census_date
),
pupils AS (
    SELECT lsoa_code, extract_date, age_band, ethnic_group,
           count(*) FILTER (WHERE sex = 'M') AS pupils_m, count(*) FILTER (WHERE sex = 'F') AS pupils_f
    FROM school
    GROUP BY lsoa_code, extract_date, age_band, ethnic_group
),
-- per LSOA x extract x band x group: GP patients by sex as recorded (M, F, U), pupils by sex. The register's
-- counts are one row per cell already: the pupils' counts are joined to them (a FULL JOIN: cells with pupils
-- and no patients too), not summed with them in a second aggregation over millions of cells
recorded AS (
    SELECT coalesce(g.lsoa_code, p.lsoa_code) AS lsoa_code, coalesce(g.extract_date, p.extract_date) AS extract_date,
           coalesce(g.age_band, p.age_band) AS age_band, coalesce(g.ethnic_group, p.ethnic_group) AS ethnic_group,
           coalesce(g.m, 0) AS gp_m, coalesce(g.f, 0) AS gp_f, coalesce(g.u, 0) AS gp_u,
           coalesce(p.pupils_m, 0) AS pupils_m, coalesce(p.pupils_f, 0) AS pupils_f
    FROM (SELECT lsoa_code, extract_date, age_band, ethnic_group, m, f, u
          FROM est_register_counts
          WHERE counted_by = 'ethnic' AND lsoa_code IN (SELECT lsoa_code FROM base_lsoa)) g
    FULL JOIN pupils p ON p.lsoa_code = g.lsoa_code AND p.extract_date = g.extract_date
        AND p.age_band = g.age_band AND p.ethnic_group = g.ethnic_group
)
SELECT r.lsoa_code, r.extract_date, s.sex, r.age_band, r.ethnic_group,
       CAST(CASE s.sex WHEN 'M' THEN r.gp_m + 0.5 * r.gp_u + r.pupils_m
                       ELSE r.gp_f + 0.5 * r.gp_u + r.pupils_f END AS DOUBLE) AS n
FROM recorded r
CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
WHERE CASE s.sex WHEN 'M' THEN r.gp_m + r.gp_u + r.pupils_m ELSE r.gp_f + r.gp_u + r.pupils_f END > 0
