-- Counts-only mode: the base by LSOA x sex (M/F, or P for persons) x ONS 5-year band, for the shared
-- school-mobility and asylum steps (prepare/09, prepare/10), which read LSOAs and their populations.
SELECT b.lsoa_code, b.sex, r.age_band, sum(b.population)::DOUBLE AS population
FROM est_base_sya b
JOIN ref_age r ON r.age = b.age
GROUP BY b.lsoa_code, b.sex, r.age_band
