-- Every LSOA row summed up the geography (LSOA -> MSOA, ward, LA) with its variance: the one
-- roll-up of the margins, for the population rows and the ethnic groups alike (02_est_lsoa_margin_rows).
-- With weights w (1, or ward_share for wards) and each LSOA's specific variance v_i:
--     E_A   = sum w E_i
--     var_A = (1 - rho) sum w^2 v_i + rho (sum w sqrt(v_i))^2          LSOA-specific errors, correlation rho
--             [+ omega^2 sum w (1 - w) E_i^2 for wards]               splitting LSOAs between wards
--             + (l_LA^2 + (l1 y)^2) E_A^2                             LA-wide error, all ages (none once the
--                                                                     LA is constrained to a supplied total);
--                                                                     l_LA = la_wide_sd, the LA's own (from its
--                                                                     list-to-base gap, margins.py), else l0
--             + sum over the row's bands b of (m0_b^2 + (m1_b y)^2) E_A,b^2   LA-wide error by age band
-- The two LA-wide terms are carried fully correlated: they are computed on the area's summed
-- estimate (its square), never summed from LSOA variances, so an LSOA carries them in full and an
-- area of n LSOAs carries n^2 times an LSOA's share, not n times. The band term is independent
-- between bands (a row spanning several bands sums their parts) and shared by both sexes
-- (E_A,b of a sex = All row is both sexes' sum). m0_b, m1_b come from est_margin_age_terms.
-- Ethnic groups (sex = age_band = All) take the LA-wide terms of their area's all-ages total in
-- proportion: (E_g / E_A)^2 x its LA-wide variance. The share-sampling variance v_share sums
-- independently. Turbulence is the residents-weighted mean of the LSOAs' scores.
-- An LSOA is its own only member (weight 1): its rows are the same expressions on one row, without
-- the GROUP BY (most rows are LSOA rows; grouping millions of one-row groups is what costs most).
WITH lsoa_level AS (
    SELECT
        m.area_code, m.area_type, r.reference_date, r.sex, r.age_band, r.ethnic_group,
        r.band_order,
        m.w * r.estimate AS estimate,
        m.w * m.w * r.variance AS v_independent,
        power(m.w * sqrt(greatest(r.variance, 0)), 2) AS v_correlated,
        m.w * (1 - m.w) * r.estimate * r.estimate AS split_sum,
        m.w * m.w * r.v_share AS v_share,
        m.w * r.total_estimate AS total_estimate,
        m.w * r.gp_list AS gp_list,
        m.w * r.base_population AS base_population,
        m.w * r.published_base AS published_base,
        m.w * r.residents * r.turbulence / nullif(m.w * r.residents, 0) AS turbulence,
        r.years_since_base,
        r.constrained,
        m.w * r.est_base_carried_forward AS est_base_carried_forward,
        m.w * r.est_raw_list AS est_raw_list,
        m.w * r.est_ratio_change AS est_ratio_change,
        r.la_wide_sd
    FROM est_area_members m
    JOIN est_lsoa_margin_rows r ON r.lsoa_code = m.lsoa_code
    WHERE m.area_type = 'lsoa'
),
rolled AS (
    SELECT * FROM lsoa_level
    UNION ALL
    SELECT
        m.area_code, m.area_type, r.reference_date, r.sex, r.age_band, r.ethnic_group,
        any_value(r.band_order) AS band_order,
        sum(m.w * r.estimate) AS estimate,
        sum(m.w * m.w * r.variance) AS v_independent,
        power(sum(m.w * sqrt(greatest(r.variance, 0))), 2) AS v_correlated,
        sum(m.w * (1 - m.w) * r.estimate * r.estimate) AS split_sum,
        sum(m.w * m.w * r.v_share) AS v_share,
        sum(m.w * r.total_estimate) AS total_estimate,
        sum(m.w * r.gp_list) AS gp_list,
        sum(m.w * r.base_population) AS base_population,
        sum(m.w * r.published_base) AS published_base,
        sum(m.w * r.residents * r.turbulence) / nullif(sum(m.w * r.residents), 0) AS turbulence,
        any_value(r.years_since_base) AS years_since_base,
        bool_and(r.constrained) AS constrained,
        sum(m.w * r.est_base_carried_forward) AS est_base_carried_forward,
        sum(m.w * r.est_raw_list) AS est_raw_list,
        sum(m.w * r.est_ratio_change) AS est_ratio_change,
        max(r.la_wide_sd) AS la_wide_sd
    FROM est_area_members m
    JOIN est_lsoa_margin_rows r ON r.lsoa_code = m.lsoa_code
    WHERE m.area_type <> 'lsoa'
    GROUP BY m.area_code, m.area_type, r.reference_date, r.sex, r.age_band, r.ethnic_group
),
band_terms AS (  -- each population row of a single band: its band's LA-wide term by age
    SELECT r.area_code, r.area_type, r.reference_date, r.sex, r.age_band,
           (t.m0 * t.m0 + power(t.m1 * r.years_since_base, 2)) * r.estimate * r.estimate AS v_band
    FROM rolled r
    JOIN est_margin_age_terms t ON t.age_band = r.age_band
    WHERE r.ethnic_group = 'All'
),
all_bands AS (  -- an all-ages row (age_band 'All') carries the sum over its bands
    SELECT area_code, area_type, reference_date, sex, 'All' AS age_band, sum(v_band) AS v_band
    FROM band_terms
    GROUP BY area_code, area_type, reference_date, sex
),
-- every population row's LA-wide variance: a band row's own band term is computed on the row (a join to the
-- 18 bands' terms), an all-ages row's sum over its bands joined from all_bands (one row per area x date x sex)
common AS (
    SELECT r.*,
           CASE WHEN r.ethnic_group <> 'All' THEN NULL
                ELSE CASE WHEN r.constrained THEN 0.0
                          ELSE (power(coalesce(r.la_wide_sd, {{ l0 }}), 2) + power({{ l1 }} * r.years_since_base, 2)) * r.estimate * r.estimate END
                     + coalesce((t.m0 * t.m0 + power(t.m1 * r.years_since_base, 2)) * r.estimate * r.estimate, b.v_band, 0.0)
           END AS v_common
    FROM rolled r
    LEFT JOIN est_margin_age_terms t ON t.age_band = r.age_band AND r.ethnic_group = 'All'
    LEFT JOIN all_bands b ON b.area_code = r.area_code AND b.area_type = r.area_type
        AND b.reference_date = r.reference_date AND b.sex = r.sex AND b.age_band = r.age_band AND r.ethnic_group = 'All'
),
all_ages AS (  -- each area's all-ages LA-wide variance relative to its total, for its ethnic rows
    SELECT area_code, area_type, reference_date, v_common / nullif(estimate * estimate, 0) AS rel_common
    FROM common
    WHERE sex = 'All' AND age_band = 'All' AND ethnic_group = 'All'
)
SELECT
    r.area_code, r.area_type, r.reference_date, r.sex, r.age_band, r.ethnic_group, r.band_order,
    r.estimate,
    (1 - {{ rho }}) * r.v_independent + {{ rho }} * r.v_correlated
        + CASE WHEN r.area_type = 'ward' THEN {{ omega }} * {{ omega }} * r.split_sum ELSE 0.0 END
        + CASE WHEN r.ethnic_group = 'All' THEN r.v_common
               ELSE coalesce(a.rel_common, 0.0) * r.estimate * r.estimate END AS variance,
    r.v_share,
    r.total_estimate,
    r.gp_list, r.base_population, r.published_base, r.turbulence, r.years_since_base, r.constrained,
    r.est_base_carried_forward, r.est_raw_list, r.est_ratio_change
FROM common r
LEFT JOIN all_ages a ON a.area_code = r.area_code AND a.area_type = r.area_type AND a.reference_date = r.reference_date
