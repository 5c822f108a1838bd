-- Area names carried by the postcode directory or the area lookup (where their layouts have name
-- columns), for any area not already named by an area-names file.
WITH geo AS (
    SELECT lsoa_code, msoa_code, ward_code, la_code, lsoa_name, msoa_name, ward_name, la_name FROM postcode_directory
    UNION ALL
    SELECT lsoa_code, msoa_code, ward_code, la_code, lsoa_name, msoa_name, ward_name, la_name FROM area_lookup
),
named AS (
    SELECT lsoa_code AS area_code, max(lsoa_name) AS area_name, 'lsoa' AS area_type FROM geo GROUP BY 1
    UNION ALL SELECT msoa_code, max(msoa_name), 'msoa' FROM geo GROUP BY 1
    UNION ALL SELECT ward_code, max(ward_name), 'ward' FROM geo GROUP BY 1
    UNION ALL SELECT la_code, max(la_name), 'la' FROM geo GROUP BY 1
)
SELECT area_code, coalesce(area_name, area_code) AS area_name, area_type,
       CASE WHEN area_code IN (SELECT lsoa_code FROM area_lookup UNION SELECT la_code FROM area_lookup
                               UNION SELECT ward_code FROM area_lookup UNION SELECT msoa_code FROM area_lookup)
            THEN 'area_lookup' ELSE 'postcode_directory' END AS source_file,
       CAST(NULL AS BIGINT) AS source_line
FROM named
WHERE area_code IS NOT NULL AND area_code NOT IN (SELECT area_code FROM area_names)
