-- The base population: the chosen reference date (and source, when the settings name one), in
-- ONS 5-year bands. Single years of age ('0' ... '89', '90+') are folded into bands.
WITH b AS (
    SELECT
        lsoa_code,
        upper(sex) AS sex,
        CASE
            WHEN regexp_matches(trim(age_band), '^[0-9]+\+?$') THEN
                CASE WHEN CAST(regexp_extract(trim(age_band), '^([0-9]+)', 1) AS INTEGER) >= 85 THEN '85+'
                     ELSE CAST(CAST(regexp_extract(trim(age_band), '^([0-9]+)', 1) AS INTEGER) // 5 * 5 AS VARCHAR)
                          || '-'
                          || CAST(CAST(regexp_extract(trim(age_band), '^([0-9]+)', 1) AS INTEGER) // 5 * 5 + 4 AS VARCHAR)
                END
            WHEN trim(age_band) IN ('85-89', '90+', '90-94', '95+') THEN '85+'
            ELSE trim(age_band)
        END AS age_band,
        population
    FROM est_src_base_population
    WHERE reference_date = {{ base_date }}
      AND ({{ base_source }} = '' OR source = {{ base_source }})
      AND upper(sex) IN ('M', 'F')
)
SELECT lsoa_code, sex, age_band, sum(population)::DOUBLE AS population
FROM b
GROUP BY ALL
