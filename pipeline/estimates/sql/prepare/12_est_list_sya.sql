-- The GP list by LSOA x extract x sex (M/F) x single year of age (0 ... 90, 90 = 90+): what the
-- register shows exactly, for cohort ageing (cohort_model.py). Patients of unknown sex (U) are
-- apportioned to M and F as in est_gp_cells (the known-sex shares of the same LSOA, age and
-- extract; half each when there are none). Only LSOAs of the base population.
WITH c AS (
    SELECT lsoa_code, extract_date, age, m, f, u
    FROM est_gp_ages  -- the register counted by LSOA x extract x single year x sex, in one pass
    WHERE lsoa_code IN (SELECT DISTINCT lsoa_code FROM est_base_sya)
)
SELECT
    c.lsoa_code, c.extract_date, s.sex, c.age,
    CASE s.sex
        WHEN 'M' THEN c.m + c.u * coalesce(c.m / nullif(c.m + c.f, 0), 0.5)
        ELSE c.f + c.u * coalesce(c.f / nullif(c.m + c.f, 0), 0.5)
    END::DOUBLE AS list_count
FROM c CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
