-- The estimation frame: every LSOA of the base population x every extract x sex x 5-year band,
-- with the list on that date (list_count), the list at the first extract (list_t0) and the base.
-- LSOAs with registered patients but no base population (neighbouring areas whose residents use
-- the area's practices) are outside the frame: a partial list says nothing about their residents.
WITH bands AS (SELECT age_band, band_order FROM ref_age_band),
lsoas AS (SELECT DISTINCT lsoa_code FROM est_base),
frame AS (
    SELECT l.lsoa_code, e.extract_date, e.k, e.years_since_base, s.sex, b.age_band, b.band_order
    FROM lsoas l
    CROSS JOIN est_extracts e
    CROSS JOIN (VALUES ('M'), ('F')) AS s(sex)
    CROSS JOIN bands b
)
SELECT
    f.lsoa_code, f.extract_date, f.k, f.years_since_base, f.sex, f.age_band, f.band_order,
    coalesce(g.list_count, 0)::DOUBLE AS list_count,
    coalesce(g0.list_count, 0)::DOUBLE AS list_t0,
    coalesce(b.population, 0)::DOUBLE AS base_population
FROM frame f
LEFT JOIN est_gp_cells g
    ON g.lsoa_code = f.lsoa_code AND g.extract_date = f.extract_date AND g.sex = f.sex AND g.age_band = f.age_band
LEFT JOIN est_gp_cells g0
    ON g0.lsoa_code = f.lsoa_code AND g0.extract_date = (SELECT min(extract_date) FROM est_extracts)
   AND g0.sex = f.sex AND g0.age_band = f.age_band
LEFT JOIN est_base b
    ON b.lsoa_code = f.lsoa_code AND b.sex = f.sex AND b.age_band = f.age_band
