-- LSOA -> MSOA, ward(s), LA. The lookup's ward_share splits an LSOA across the wards it spans.
-- LSOAs of the base population missing from the lookup take their geography from the GP
-- register (their patients' ward shares), so no estimated LSOA falls out of the higher levels.
-- The register's LSOAs are read off est_gp_ages first: only the patients of LSOAs missing from
-- the lookup are read row by row (none, when the lookup is complete: the register is not scanned).
WITH lk AS (
    SELECT lsoa_code, msoa_code, ward_code, la_code, ward_share::DOUBLE AS ward_share
    FROM est_src_lsoa_lookup
    WHERE lsoa_code IS NOT NULL
),
missing AS (
    SELECT DISTINCT lsoa_code FROM est_gp_ages
    WHERE lsoa_code NOT IN (SELECT lsoa_code FROM lk)
),
from_gp AS (
    SELECT lsoa_code, any_value(msoa_code) AS msoa_code, ward_code, any_value(la_code) AS la_code,
           count(*) AS n
    FROM est_gp_patients
    WHERE extract_date = (SELECT min(extract_date) FROM est_extracts)
      AND lsoa_code IN (SELECT lsoa_code FROM missing)
      AND ward_code IS NOT NULL
    GROUP BY lsoa_code, ward_code
)
SELECT lsoa_code, msoa_code, ward_code, la_code, ward_share FROM lk
UNION ALL
SELECT lsoa_code, msoa_code, ward_code, la_code, n / sum(n) OVER (PARTITION BY lsoa_code) AS ward_share
FROM from_gp
