-- Broad ethnic groups by area and date (see pipeline/estimates/ethnicity.py). Group estimates
-- sum up the geography; their population part of the variance combines with correlation rho,
-- the share-sampling part independently. Shares are of the area's estimated population.
WITH a AS (
    SELECT
        m.area_code, m.area_type, e.reference_date, e.ethnic_group,
        sum(m.w * e.estimate) AS estimate,
        (1 - {{ rho }}) * sum(m.w * m.w * e.v_pop) + {{ rho }} * power(sum(m.w * sqrt(e.v_pop)), 2) AS v_pop,
        sum(m.w * m.w * e.v_share) AS v_share,
        sum(m.w * e.total_estimate) AS total_estimate
    FROM est_area_members m
    JOIN est_lsoa_ethnic e ON e.lsoa_code = m.lsoa_code
    GROUP BY m.area_code, m.area_type, e.reference_date, e.ethnic_group
)
SELECT
    area_code, area_type, reference_date, ethnic_group,
    estimate,
    greatest(0.0, estimate - {{ z }} * sqrt(v_pop + v_share)) AS lower_95,
    estimate + {{ z }} * sqrt(v_pop + v_share) AS upper_95,
    estimate / nullif(total_estimate, 0) AS share,
    greatest(0.0, (estimate - {{ z }} * sqrt(v_share)) / nullif(total_estimate, 0)) AS share_lower_95,
    least(1.0, (estimate + {{ z }} * sqrt(v_share)) / nullif(total_estimate, 0)) AS share_upper_95
FROM a
ORDER BY CASE area_type WHEN 'la' THEN 0 WHEN 'ward' THEN 1 WHEN 'msoa' THEN 2 ELSE 3 END,
         area_code, reference_date,
         CASE ethnic_group WHEN 'White' THEN 1 WHEN 'Mixed' THEN 2 WHEN 'Asian' THEN 3 WHEN 'Black' THEN 4 ELSE 5 END
