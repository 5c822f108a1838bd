-- Area names carried by the postcode directory (where its layout has name columns),
-- for any area not already named by an area-names file.
WITH named AS (
    SELECT lsoa_code AS area_code, max(lsoa_name) AS area_name, 'lsoa' AS area_type FROM postcode_directory GROUP BY 1
    UNION ALL SELECT msoa_code, max(msoa_name), 'msoa' FROM postcode_directory GROUP BY 1
    UNION ALL SELECT ward_code, max(ward_name), 'ward' FROM postcode_directory GROUP BY 1
    UNION ALL SELECT la_code, max(la_name), 'la' FROM postcode_directory GROUP BY 1
)
SELECT area_code, coalesce(area_name, area_code) AS area_name, area_type,
       'postcode_directory' AS source_file, CAST(NULL AS BIGINT) AS source_line
FROM named
WHERE area_code NOT IN (SELECT area_code FROM area_names)
