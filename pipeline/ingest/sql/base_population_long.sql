-- Base population in the canonical long form -> ONS 5-year bands (ref_age_label: single years
-- 0 ... 90+ are summed into their band; 5-year bands pass through; 85-89 and 90+ fold into 85+).
SELECT v.reference_date, v.area_code AS lsoa_code, v.sex, l.age_band,
       sum(v.population) AS population, v.source, v.source_file
FROM valid v
JOIN ref_age_label l ON l.label = trim(v.age_band)
GROUP BY v.reference_date, v.area_code, v.sex, l.age_band, v.source, v.source_file
