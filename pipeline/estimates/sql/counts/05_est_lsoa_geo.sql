-- Counts-only mode: LSOA -> MSOA, ward(s), LA from the area lookup (postcode directory or a lookup
-- without postcodes); levels the lookup lacks stay NULL and are not produced.
SELECT lsoa_code, msoa_code, ward_code, la_code, ward_share::DOUBLE AS ward_share
FROM est_src_lsoa_lookup
WHERE lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
