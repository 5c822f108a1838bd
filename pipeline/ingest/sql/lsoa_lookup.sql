-- LSOA -> MSOA, ward, LA. LSOAs are not nested in wards: an LSOA spanning two wards appears
-- twice, ward_share being the share of its postcodes in each (shares sum to 1 per LSOA). From the
-- postcode directory and/or an area lookup without postcodes (each of its rows counting once).
WITH geo AS (
    SELECT lsoa_code, msoa_code, ward_code, la_code FROM postcode_directory
    UNION ALL
    SELECT lsoa_code, msoa_code, ward_code, la_code FROM area_lookup
)
SELECT lsoa_code, msoa_code, ward_code, la_code,
       count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY lsoa_code) AS ward_share
FROM geo
GROUP BY lsoa_code, msoa_code, ward_code, la_code
