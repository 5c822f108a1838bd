-- The partner contract (spec/outputs.md): the outputs.md columns first, then base_date,
-- published_base, years_since_base and constrained. base_population is the base the estimate
-- builds on (the published base moved towards the list, see base.py); published_base is the
-- figure as published. Interval: estimate -/+ z sqrt(variance), lower limit floored
-- at 0; an LA all-ages total constrained to a supplied figure has no margin. The columns are
-- named _95 as in the contract; they hold the interval of settings.interval_level (0.95 default).
-- method names the run mode (cohdmap:register_movements, cohdmap:register_snapshots,
-- cohdmap:counts_only). A mode whose margins have not been checked publishes no interval
-- (empty lower_95/upper_95) and says why in note.
SELECT
    a.area_code,
    n.area_name,
    a.area_type,
    a.reference_date,
    a.sex,
    a.age_band,
    a.estimate,
    CASE WHEN a.constrained AND a.area_type = 'la' AND a.sex = 'All' AND a.age_band = 'All' THEN a.estimate
         WHEN NOT {{ intervals }} THEN NULL
         ELSE greatest(0.0, a.estimate - {{ z }} * sqrt(greatest(a.variance, 0))) END AS lower_95,
    CASE WHEN a.constrained AND a.area_type = 'la' AND a.sex = 'All' AND a.age_band = 'All' THEN a.estimate
         WHEN NOT {{ intervals }} THEN NULL
         ELSE a.estimate + {{ z }} * sqrt(greatest(a.variance, 0)) END AS upper_95,
    a.gp_list,
    a.base_population,
    a.turbulence,
    {{ method }} AS method,
    {{ base_date }} AS base_date,
    a.published_base,
    a.years_since_base,
    a.constrained,
    {{ interval_note }} AS note
FROM est_area_rows a
LEFT JOIN (SELECT area_code, any_value(area_name) AS area_name FROM est_src_area_names GROUP BY area_code) n
    ON n.area_code = a.area_code
WHERE a.ethnic_group = 'All'
