-- Each area's estimated residents by the five census ethnic groups (ethnicity_estimates), on each
-- estimate date: the diversity index is computed from these counts.
SELECT area_code, area_type, reference_date AS period_start, reference_date AS period_end, 'All' AS breakdown,
       ethnic_group AS group_name, estimate AS group_count
FROM ethnicity_estimates
WHERE area_type IN ('ward', 'la') AND estimate IS NOT NULL
