-- Counts-only mode: patients by practice x LSOA x extract, for the LSOAs with a base population.
-- A persons file (SEX = ALL) is used as it is; where an extract has only MALE/FEMALE rows they are
-- summed (an extract holding both forms uses the persons rows, never both).
WITH c AS (
    SELECT extract_date, practice_code, lsoa_code, upper(sex) AS sex, sum(patients)::DOUBLE AS patients
    FROM est_src_gp_counts
    WHERE extract_date IS NOT NULL AND lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
      AND (age_band IS NULL OR trim(age_band) = '')
    GROUP BY extract_date, practice_code, lsoa_code, upper(sex)
),
has_all AS (SELECT DISTINCT extract_date FROM c WHERE sex = 'ALL')
SELECT extract_date, practice_code, lsoa_code, sum(patients) AS patients
FROM c
WHERE (sex = 'ALL' AND extract_date IN (SELECT extract_date FROM has_all))
   OR (sex IN ('M', 'F') AND extract_date NOT IN (SELECT extract_date FROM has_all))
GROUP BY extract_date, practice_code, lsoa_code
