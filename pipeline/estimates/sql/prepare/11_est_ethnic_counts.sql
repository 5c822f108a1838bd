-- Recorded ethnicity per LSOA x extract x sex x band x census group: GP registrations (NHS ethnic
-- category) plus, for school ages, pupils of the latest school census on or before the extract
-- date (DfE ethnicity code); both grouped by the shared vocabulary (ref_ethnic_code). School years map to bands
-- by age at the start of the year: nursery 0-4, Reception-Year 4 5-9, Years 5-9 10-14,
-- Years 10-14 15-19. Unknown sex on the GP list is split equally (after the register is counted,
-- in one pass, by LSOA x extract x sex as recorded x band x group).
WITH gp_recorded AS (
    SELECT lsoa_code, extract_date, sex, age_band, ethnic_group, count(*) AS patients
    FROM est_gp_patients
    WHERE lsoa_code IN (SELECT lsoa_code FROM est_base)
    GROUP BY lsoa_code, extract_date, sex, age_band, ethnic_group
),
gp AS (
    SELECT p.lsoa_code, p.extract_date, s.sex, p.age_band, p.ethnic_group,
           sum(p.patients * CASE WHEN p.sex = 'U' THEN 0.5 ELSE 1.0 END) AS n
    FROM gp_recorded p
    JOIN (VALUES ('M'), ('F')) AS s(sex) ON p.sex = 'U' OR p.sex = s.sex
    GROUP BY p.lsoa_code, p.extract_date, s.sex, p.age_band, p.ethnic_group
),
sc AS (
    SELECT census_date, lsoa_code, upper(sex) AS sex,
           CASE WHEN regexp_matches(upper(trim(CAST(nc_year AS VARCHAR))), '^Y?[0-9]+$')
                THEN CAST(regexp_extract(upper(trim(CAST(nc_year AS VARCHAR))), '([0-9]+)', 1) AS INTEGER)
                WHEN upper(trim(CAST(nc_year AS VARCHAR))) = 'R' THEN 0
                ELSE -1 END AS year_num,
           coalesce((SELECT r.ethnic_group FROM ref_ethnic_code r WHERE r.scheme = 'dfe' AND r.code = upper(ethnicity)),
                    'Not stated') AS ethnic_group
    FROM est_src_school_census
    WHERE upper(sex) IN ('M', 'F') AND lsoa_code IN (SELECT lsoa_code FROM est_base)
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
           sc.ethnic_group, count(*)::DOUBLE AS n
    FROM sc JOIN latest l ON l.census_date = sc.census_date
    GROUP BY sc.lsoa_code, l.extract_date, sc.sex, sc.year_num, sc.ethnic_group  -- bands summed below
)
SELECT lsoa_code, extract_date, sex, age_band, ethnic_group, sum(n) AS n
FROM (SELECT * FROM gp UNION ALL SELECT * FROM school) AS u
GROUP BY lsoa_code, extract_date, sex, age_band, ethnic_group
