-- The base population by LSOA x sex x single year of age (0 ... 90, 90 = 90+) on the base date
-- (both modes: the cohorts are aged from it), from base_population_sya (sex M/F, or P for a persons-only base). Where an LSOA
-- and sex has only 5-year bands, each band is spread evenly over its single years (85+ over 85-90).
WITH sya AS (
    SELECT lsoa_code, upper(sex) AS sex, least(age, 90) AS age, population
    FROM est_src_base_population_sya
    WHERE reference_date = {{ base_date }} AND ({{ base_source }} = '' OR source = {{ base_source }})
      AND upper(sex) IN ('M', 'F', 'P') AND age IS NOT NULL AND age >= 0
),
banded AS (
    SELECT lsoa_code, upper(sex) AS sex,
           CAST(regexp_extract(trim(age_band), '^([0-9]+)', 1) AS INTEGER) AS lo,
           CASE WHEN trim(age_band) LIKE '%+' THEN 90
                WHEN regexp_matches(trim(age_band), '^[0-9]+-[0-9]+$')
                    THEN CAST(regexp_extract(trim(age_band), '-([0-9]+)$', 1) AS INTEGER)
                ELSE CAST(regexp_extract(trim(age_band), '^([0-9]+)', 1) AS INTEGER) END AS hi,
           population
    FROM est_src_base_population AS b0
    WHERE reference_date = {{ base_date }} AND ({{ base_source }} = '' OR source = {{ base_source }})
      AND upper(sex) IN ('M', 'F', 'P')
      AND NOT EXISTS (SELECT 1 FROM sya WHERE sya.lsoa_code = b0.lsoa_code AND sya.sex = upper(b0.sex))
),
spread AS (
    SELECT b.lsoa_code, b.sex, CAST(r.age AS INTEGER) AS age, b.population / (least(b.hi, 90) - b.lo + 1) AS population
    FROM banded b
    JOIN ref_age AS r ON r.age BETWEEN b.lo AND least(b.hi, 90)  -- ref_age: ages 0 ... 120 (pipeline/vocabulary.py)
)
SELECT lsoa_code, sex, age, sum(population)::DOUBLE AS population
FROM (SELECT * FROM sya UNION ALL SELECT * FROM spread) AS s
GROUP BY lsoa_code, sex, age
