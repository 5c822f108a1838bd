-- The base population: the chosen reference date (and source, when the settings name one), in
-- ONS 5-year bands (ref_age_label folds single years '0' ... '90+' into their band).
SELECT b.lsoa_code, upper(b.sex) AS sex, l.age_band, sum(b.population)::DOUBLE AS population
FROM est_src_base_population b
JOIN ref_age_label l ON l.label = trim(b.age_band)
WHERE b.reference_date = {{ base_date }}
  AND ({{ base_source }} = '' OR b.source = {{ base_source }})
  AND upper(b.sex) IN ('M', 'F')
GROUP BY b.lsoa_code, upper(b.sex), l.age_band
