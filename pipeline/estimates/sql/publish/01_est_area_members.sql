-- Which LSOAs make up each area, with the weight each contributes: 1 for the LSOA itself, its
-- MSOA and its LA; ward_share for each ward it spans (LSOAs can straddle ward boundaries).
WITH geo AS (
    SELECT * FROM est_lsoa_geo WHERE lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_lsoa_rows)
)
SELECT DISTINCT lsoa_code, lsoa_code AS area_code, 'lsoa' AS area_type, 1.0 AS w FROM est_lsoa_rows
UNION ALL
SELECT DISTINCT lsoa_code, msoa_code AS area_code, 'msoa' AS area_type, 1.0 AS w FROM geo WHERE msoa_code IS NOT NULL
UNION ALL
SELECT lsoa_code, ward_code AS area_code, 'ward' AS area_type, sum(ward_share) AS w
FROM geo WHERE ward_code IS NOT NULL GROUP BY lsoa_code, ward_code
UNION ALL
SELECT DISTINCT lsoa_code, la_code AS area_code, 'la' AS area_type, 1.0 AS w FROM geo WHERE la_code IS NOT NULL
