-- Every method's estimate side by side, long format, for the back-test and comparisons:
-- base_carried_forward (the base population unchanged), raw_list (the GP list itself),
-- ratio_change (ONS: base x L(t) / L(t0) per age-sex cell) and cohdmap (ours).
SELECT area_code, area_type, reference_date, sex, age_band, 'base_carried_forward' AS method,
       est_base_carried_forward AS estimate
FROM est_area_rows WHERE ethnic_group = 'All'
UNION ALL
SELECT area_code, area_type, reference_date, sex, age_band, 'raw_list', est_raw_list FROM est_area_rows WHERE ethnic_group = 'All'
UNION ALL
SELECT area_code, area_type, reference_date, sex, age_band, 'ratio_change', est_ratio_change FROM est_area_rows WHERE ethnic_group = 'All'
UNION ALL
SELECT area_code, area_type, reference_date, sex, age_band, 'cohdmap', estimate FROM est_area_rows WHERE ethnic_group = 'All'
