-- A wide layout's single years of age (`unpivoted`), kept as they are for cohort ageing
-- (base_population_sya; age 90 is the open 90+).
SELECT reference_date, lsoa_code, sex, age, population, source, source_file
FROM unpivoted
