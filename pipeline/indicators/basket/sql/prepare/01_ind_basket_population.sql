-- Denominators for the basket's rates: each area's estimated population on each estimate date
-- (population_estimates, every area level), all persons and women aged 15-44 (maternity demand).
SELECT area_code, area_type, reference_date,
       sum(CASE WHEN sex = 'All' AND age_band = 'All' THEN estimate END) AS population,
       sum(CASE WHEN sex = 'F' AND age_band IN ('15-19', '20-24', '25-29', '30-34', '35-39', '40-44')
                THEN estimate END) AS women_15_44
FROM population_estimates
GROUP BY area_code, area_type, reference_date
