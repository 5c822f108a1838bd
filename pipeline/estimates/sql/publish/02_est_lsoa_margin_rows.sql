-- Every LSOA row the geography sums up, population and ethnic groups in one table, so that one
-- roll-up (03_est_area_rows.sql) carries every margin:
--   population rows  (ethnic_group 'All')  each sex x band, sex and band margins and the total
--   ethnic rows      (sex 'All', age_band 'All') each broad ethnic group, with v_share, the
--                    share-sampling variance (independent between LSOAs), and total_estimate,
--                    the LSOA's population the shares are of
-- variance is the LSOA-specific variance (margins.py: predict_variance); the error common to the
-- whole LA is added in the roll-up, fully correlated between the LSOAs; la_wide_sd is its relative
-- SD at the base for the LSOA's LA (margins.py: la_wide_sd, from the LA's list-to-base gap).
SELECT lsoa_code, reference_date, sex, age_band, band_order, 'All' AS ethnic_group,
       estimate, variance, 0.0 AS v_share, estimate AS total_estimate,
       gp_list, base_population, published_base, residents, turbulence, years_since_base, constrained,
       est_base_carried_forward, est_raw_list, est_ratio_change, la_wide_sd
FROM est_lsoa_rows
UNION ALL
SELECT lsoa_code, reference_date, 'All' AS sex, 'All' AS age_band, 18 AS band_order, ethnic_group,
       estimate, v_pop AS variance, v_share, total_estimate,
       0.0 AS gp_list, 0.0 AS base_population, 0.0 AS published_base, 0.0 AS residents, 0.0 AS turbulence,
       years_since_base, FALSE AS constrained,
       0.0 AS est_base_carried_forward, 0.0 AS est_raw_list, 0.0 AS est_ratio_change, 0.0 AS la_wide_sd
FROM est_lsoa_ethnic
