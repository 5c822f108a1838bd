-- Counts-only mode: patients by practice x LSOA x extract, for the LSOAs with a base population.
-- A persons file (SEX = ALL) is used as it is; for an extract without one, the counts by sex are
-- summed, each sex from its unbanded rows where published, else from the age-banded variant's
-- bands (never two forms of the same patients at once).
WITH c AS (
    SELECT extract_date, practice_code, lsoa_code, upper(sex) AS sex,
           sum(patients) FILTER (WHERE age_band IS NULL OR trim(age_band) = '')::DOUBLE AS unbanded,
           sum(patients) FILTER (WHERE NOT (age_band IS NULL OR trim(age_band) = ''))::DOUBLE AS banded
    FROM est_src_gp_counts
    WHERE extract_date IS NOT NULL AND lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
      AND upper(sex) IN ('ALL', 'M', 'F')
    GROUP BY extract_date, practice_code, lsoa_code, upper(sex)
),
persons_dates AS (SELECT DISTINCT extract_date FROM c WHERE sex = 'ALL')
SELECT extract_date, practice_code, lsoa_code, sum(coalesce(unbanded, banded)) AS patients
FROM c
WHERE (sex = 'ALL') = (extract_date IN (SELECT extract_date FROM persons_dates))
GROUP BY extract_date, practice_code, lsoa_code
