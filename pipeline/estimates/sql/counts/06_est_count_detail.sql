-- Counts-only mode: what the published counts say about sex and age within each LSOA, summed over
-- practices: patients by extract x LSOA x sex (M/F) and, from the age-banded variant, x ONS 5-year
-- band (age_band NULL for counts by sex only). The estimates rake the list by age to these.
SELECT g.extract_date, g.lsoa_code, upper(g.sex) AS sex,
       CASE WHEN g.age_band IS NULL OR trim(g.age_band) = '' THEN NULL ELSE l.age_band END AS age_band,
       sum(g.patients)::DOUBLE AS patients
FROM est_src_gp_counts g
LEFT JOIN ref_age_label l ON l.label = trim(g.age_band)
WHERE g.extract_date IS NOT NULL AND upper(g.sex) IN ('M', 'F')
  AND g.lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
GROUP BY g.extract_date, g.lsoa_code, upper(g.sex),
         CASE WHEN g.age_band IS NULL OR trim(g.age_band) = '' THEN NULL ELSE l.age_band END
