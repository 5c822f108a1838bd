-- The GP list by LSOA x extract x sex (M/F) x 5-year band. Patients of unknown sex (U) are
-- apportioned to M and F in the proportions of the known-sex patients of the same LSOA, band and
-- extract (half each when there are none), so cells can be fractional and sum to the full list.
-- (Published counts without a register are estimated in counts-only mode: sql/counts, counts.py.)
-- The counts by sex are summed from single years (est_gp_ages; ages 90+ are all in band 85+).
WITH c AS (
    SELECT
        g.lsoa_code, g.extract_date, a.age_band,
        CAST(sum(g.m) AS BIGINT) AS m,
        CAST(sum(g.f) AS BIGINT) AS f,
        CAST(sum(g.u) AS BIGINT) AS u
    FROM est_gp_ages g
    JOIN ref_age a ON a.age = g.age
    GROUP BY g.lsoa_code, g.extract_date, a.age_band
)
SELECT
    c.lsoa_code, c.extract_date, s.sex, c.age_band,
    CASE s.sex
        WHEN 'M' THEN c.m + c.u * coalesce(c.m / nullif(c.m + c.f, 0), 0.5)
        ELSE c.f + c.u * coalesce(c.f / nullif(c.m + c.f, 0), 0.5)
    END AS list_count
FROM c CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
