-- Base population in the canonical long form -> ONS 5-year bands. Single years (0 … 90+) are
-- summed into their band; 5-year bands pass through (85-89 and 90+ fold into 85+).
WITH aged AS (
    SELECT reference_date, area_code AS lsoa_code, sex, population, source, source_file,
           TRY_CAST(regexp_extract(age_band, '^(\d+)', 1) AS INTEGER) AS age
    FROM valid
)
SELECT reference_date, lsoa_code, sex,
       CASE WHEN age >= 85 THEN '85+' ELSE CAST(age // 5 * 5 AS VARCHAR) || '-' || CAST(age // 5 * 5 + 4 AS VARCHAR) END AS age_band,
       sum(population) AS population, source, source_file
FROM aged
GROUP BY ALL
