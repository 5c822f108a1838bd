-- Broad ethnic groups by area and date (see pipeline/estimates/ethnicity.py). Group estimates
-- sum up the geography; their population part of the variance combines like the population
-- margins (correlation rho, the ward-split and LA-common terms), the share-sampling part
-- independently, and each area adds a composition term
-- eta^2 p (1 - p) (share scale): the registered population's mix is not quite the residents'
-- (ghosts, people who never register), an error that does not average out over an area.
-- Shares are of the area's estimated population. After the contract columns:
-- share_sampling_se, the share's SE from the records alone. A run mode whose margins have not been
-- checked (intervals = FALSE) publishes no intervals.
WITH a0 AS (
    SELECT
        m.area_code, m.area_type, e.reference_date, e.ethnic_group,
        sum(m.w * e.estimate) AS estimate,
        (1 - {{ rho }}) * sum(m.w * m.w * e.v_pop) + {{ rho }} * power(sum(m.w * sqrt(e.v_pop)), 2)
            + CASE WHEN m.area_type = 'ward' THEN {{ omega }} * {{ omega }} * sum(m.w * (1 - m.w) * e.estimate * e.estimate)
                   ELSE 0 END
            + ({{ l0 }} * {{ l0 }} + power({{ l1 }} * any_value(e.years_since_base), 2))
                * power(sum(m.w * e.estimate), 2) AS v_pop,
        sum(m.w * m.w * e.v_share) AS v_share,
        sum(m.w * e.total_estimate) AS total_estimate
    FROM est_area_members m
    JOIN est_lsoa_ethnic e ON e.lsoa_code = m.lsoa_code
    GROUP BY m.area_code, m.area_type, e.reference_date, e.ethnic_group
),
a AS (
    SELECT *,
           {{ eta }} * {{ eta }} * (estimate / nullif(total_estimate, 0)) * (1 - estimate / nullif(total_estimate, 0))
               AS v_comp_share
    FROM a0
)
SELECT
    area_code, area_type, reference_date, ethnic_group,
    estimate,
    CASE WHEN {{ intervals }} THEN greatest(0.0, estimate - {{ z }} * sqrt(v_pop + v_share + coalesce(v_comp_share, 0) * total_estimate * total_estimate))
        END AS lower_95,
    CASE WHEN {{ intervals }} THEN estimate + {{ z }} * sqrt(v_pop + v_share + coalesce(v_comp_share, 0) * total_estimate * total_estimate) END AS upper_95,
    estimate / nullif(total_estimate, 0) AS share,
    CASE WHEN {{ intervals }} THEN greatest(0.0, estimate / nullif(total_estimate, 0)
                  - {{ z }} * sqrt(v_share / nullif(total_estimate * total_estimate, 0) + coalesce(v_comp_share, 0)))
        END AS share_lower_95,
    CASE WHEN {{ intervals }} THEN least(1.0, estimate / nullif(total_estimate, 0)
               + {{ z }} * sqrt(v_share / nullif(total_estimate * total_estimate, 0) + coalesce(v_comp_share, 0)))
        END AS share_upper_95,
    sqrt(v_share) / nullif(total_estimate, 0) AS share_sampling_se
FROM a
