-- The GP list by LSOA x extract x sex (M/F) x 5-year band. Patients of unknown sex (U) are
-- apportioned to M and F in the proportions of the known-sex patients of the same LSOA, band and
-- extract (half each when there are none), so cells can be fractional and sum to the full list.
-- Without a patient-level register (list_from_counts), the published counts are used: banded
-- counts as they are, unbanded counts spread over bands in proportion to the base population
-- of the LSOA and sex.
WITH c AS (
    SELECT
        lsoa_code, extract_date, age_band,
        count(*) FILTER (WHERE sex = 'M') AS m,
        count(*) FILTER (WHERE sex = 'F') AS f,
        count(*) FILTER (WHERE sex = 'U') AS u
    FROM est_gp_patients
    GROUP BY ALL
)
SELECT
    c.lsoa_code, c.extract_date, s.sex, c.age_band,
    CASE s.sex
        WHEN 'M' THEN c.m + c.u * coalesce(c.m / nullif(c.m + c.f, 0), 0.5)
        ELSE c.f + c.u * coalesce(c.f / nullif(c.m + c.f, 0), 0.5)
    END AS list_count
FROM c CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
WHERE NOT {{ list_from_counts }}
UNION ALL
SELECT g.lsoa_code, g.extract_date, upper(g.sex) AS sex, l.age_band, sum(g.patients)::DOUBLE AS list_count
FROM est_src_gp_counts g
JOIN ref_age_label l ON l.label = trim(g.age_band)
WHERE {{ list_from_counts }} AND upper(g.sex) IN ('M', 'F')
GROUP BY g.lsoa_code, g.extract_date, upper(g.sex), l.age_band
UNION ALL
SELECT u.lsoa_code, u.extract_date, u.sex, b.age_band,
       u.patients * (b.population + 1e-9) / sum(b.population + 1e-9) OVER (PARTITION BY u.lsoa_code, u.extract_date, u.sex)
FROM (SELECT lsoa_code, extract_date, upper(sex) AS sex, sum(patients)::DOUBLE AS patients
      FROM est_src_gp_counts
      WHERE {{ list_from_counts }} AND upper(sex) IN ('M', 'F') AND (age_band IS NULL OR trim(age_band) = '')
      GROUP BY ALL) u
JOIN est_base b ON b.lsoa_code = u.lsoa_code AND b.sex = u.sex
