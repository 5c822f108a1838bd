-- Estimates summed up the geography (LSOA -> MSOA, ward, LA), every sex x band row and its
-- margins. Variances combine with partial correlation rho between LSOAs:
--     var_A = (1 - rho) sum w^2 var_i + rho (sum w sqrt(var_i))^2
-- (for an LSOA itself this is its own variance), plus, for wards, omega^2 sum w (1 - w) E_i^2:
-- the error of splitting an LSOA between wards by its share of postcodes rather than people, and
-- for every area, the LSOA itself included, the error common to the whole LA,
-- (l0^2 + (l1 y)^2) E_A^2 (none once the LA is constrained to a supplied total). The LSOAs'
-- own variances are their specific parts (see margins.py). Turbulence is the residents-weighted mean of
-- the LSOAs' scores. Every method's estimate is summed the same way.
SELECT
    m.area_code, m.area_type, r.reference_date, r.sex, r.age_band,
    any_value(r.band_order) AS band_order,
    sum(m.w * r.estimate) AS estimate,
    (1 - {{ rho }}) * sum(m.w * m.w * r.variance) + {{ rho }} * power(sum(m.w * sqrt(r.variance)), 2)
        + CASE WHEN m.area_type = 'ward' THEN {{ omega }} * {{ omega }} * sum(m.w * (1 - m.w) * r.estimate * r.estimate)
               ELSE 0 END
        + CASE WHEN bool_and(r.constrained) THEN 0
               ELSE ({{ l0 }} * {{ l0 }} + power({{ l1 }} * any_value(r.years_since_base), 2))
                    * power(sum(m.w * r.estimate), 2) END AS variance,
    sum(m.w * r.gp_list) AS gp_list,
    sum(m.w * r.base_population) AS base_population,
    sum(m.w * r.published_base) AS published_base,
    sum(m.w * r.residents * r.turbulence) / nullif(sum(m.w * r.residents), 0) AS turbulence,
    any_value(r.years_since_base) AS years_since_base,
    bool_and(r.constrained) AS constrained,
    sum(m.w * r.est_base_carried_forward) AS est_base_carried_forward,
    sum(m.w * r.est_raw_list) AS est_raw_list,
    sum(m.w * r.est_ratio_change) AS est_ratio_change
FROM est_area_members m
JOIN est_lsoa_rows r ON r.lsoa_code = m.lsoa_code
GROUP BY m.area_code, m.area_type, r.reference_date, r.sex, r.age_band
