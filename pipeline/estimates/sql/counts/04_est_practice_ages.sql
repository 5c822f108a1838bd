-- Counts-only mode: each practice's patients by sex x single year of age (0 ... 90, 90 = 90+; the
-- published 95+ is folded in) at each date the practice x age file was published.
SELECT extract_date AS profile_date, practice_code, upper(sex) AS sex,
       least(CAST(regexp_extract(trim(age), '^([0-9]+)', 1) AS INTEGER), 90) AS age,
       sum(patients)::DOUBLE AS patients
FROM est_src_gp_practice_age
WHERE extract_date IS NOT NULL AND upper(sex) IN ('M', 'F') AND regexp_matches(trim(age), '^[0-9]+\+?$')
GROUP BY extract_date, practice_code, upper(sex), least(CAST(regexp_extract(trim(age), '^([0-9]+)', 1) AS INTEGER), 90)
