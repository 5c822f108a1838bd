-- Base population in the canonical long form, where it is given by single year of age ('0' … '90+'):
-- the single years themselves, kept for cohort ageing (age 90 = 90+; 5-year bands are not split here).
SELECT reference_date, area_code AS lsoa_code, sex,
       least(CAST(regexp_extract(trim(age_band), '^(\d+)', 1) AS INTEGER), 90) AS age,
       sum(population) AS population, source, source_file
FROM valid
WHERE regexp_full_match(trim(age_band), '\d{1,2}\+?')
GROUP BY reference_date, area_code, sex, least(CAST(regexp_extract(trim(age_band), '^(\d+)', 1) AS INTEGER), 90),
         source, source_file
