-- Broad ethnic groups by area and date (see pipeline/estimates/ethnicity.py). The groups are summed
-- up the geography by the one roll-up of the margins (03_est_area_rows.sql, ethnic_group <> 'All'):
-- their population variance (v_pop: the LSOA-specific part with correlation rho, the ward split,
-- and the LA-wide terms in proportion to the group's size) is `variance` there, and the
-- share-sampling variance v_share sums independently. Each area adds a composition term
-- eta^2 p (1 - p) (share scale): the registered population's mix is not quite the residents'
-- (ghosts, people who never register), an error that does not average out over an area.
-- Shares are of the area's estimated population. After the contract columns:
-- share_sampling_se, the share's SE from the records alone. A run mode whose margins have not been
-- checked (intervals = FALSE) publishes no intervals.
WITH a AS (
    SELECT area_code, area_type, reference_date, ethnic_group, estimate, variance AS v_pop, v_share, total_estimate,
           {{ eta }} * {{ eta }} * (estimate / nullif(total_estimate, 0)) * (1 - estimate / nullif(total_estimate, 0))
               AS v_comp_share
    FROM est_area_rows
    WHERE ethnic_group <> 'All'
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
