-- Every place a record may name, resolved to the geography: postcodes and area codes, from the
-- postcode directory and/or an area lookup without postcodes (levels a lookup lacks stay NULL and
-- are not produced). An LSOA's ward is its best-fit ward (the ward holding most of its postcodes).
WITH geo AS (
    SELECT postcode, lsoa_code, msoa_code, ward_code, la_code FROM postcode_directory
    UNION ALL
    SELECT NULL AS postcode, lsoa_code, msoa_code, ward_code, la_code FROM area_lookup
),
best_ward AS (
    SELECT lsoa_code, ward_code
    FROM (SELECT lsoa_code, ward_code,
                 row_number() OVER (PARTITION BY lsoa_code ORDER BY count(*) DESC, ward_code) AS rank
          FROM geo GROUP BY lsoa_code, ward_code)
    WHERE rank = 1
),
lsoas AS (
    SELECT lsoa_code, max(msoa_code) AS msoa_code, max(la_code) AS la_code FROM geo GROUP BY lsoa_code
)
SELECT postcode AS place, 'postcode' AS area_type, lsoa_code, msoa_code, ward_code, la_code FROM geo
WHERE postcode IS NOT NULL
UNION ALL
SELECT l.lsoa_code, 'lsoa', l.lsoa_code, l.msoa_code, b.ward_code, l.la_code FROM lsoas AS l JOIN best_ward AS b USING (lsoa_code)
UNION ALL
SELECT DISTINCT msoa_code, 'msoa', NULL, msoa_code, NULL, la_code FROM geo WHERE msoa_code IS NOT NULL
UNION ALL
SELECT DISTINCT ward_code, 'ward', NULL, NULL, ward_code, la_code FROM geo WHERE ward_code IS NOT NULL
UNION ALL
SELECT DISTINCT la_code, 'la', NULL, NULL, NULL, la_code FROM geo WHERE la_code IS NOT NULL
