-- Asylum seekers newly housed, per LSOA and GP extract period (prev_date, extract_date]: each
-- allocation row pro-rated by the share of its period inside the extract period (allocations
-- assumed spread evenly), and rows for a ward, MSOA or LA shared among its LSOAs by base
-- population (x ward_share for wards).
WITH al AS (
    SELECT row_number() OVER (ORDER BY period_start, period_end, area_type, area_code, persons_allocated) AS al_id, period_start, period_end, area_code, lower(area_type) AS area_type,
           persons_allocated::DOUBLE AS persons, (date_diff('day', period_start, period_end) + 1)::DOUBLE AS period_days
    FROM est_src_asylum_allocations
    WHERE period_end >= period_start AND coalesce(persons_allocated, 0) > 0
),
per AS (
    SELECT al.al_id, al.area_code, al.area_type, e.extract_date,
           al.persons * greatest(0, date_diff('day', greatest(al.period_start, e.prev_date + 1),
                                                  least(al.period_end, e.extract_date)) + 1) / al.period_days AS persons
    FROM al JOIN est_extracts e ON e.k > 0
),
pop AS (SELECT lsoa_code, sum(population) AS population FROM est_base GROUP BY lsoa_code),
geo AS (
    SELECT g.lsoa_code, g.msoa_code, g.ward_code, g.la_code, g.ward_share, coalesce(p.population, 0) AS population
    FROM est_lsoa_geo g JOIN pop p ON p.lsoa_code = g.lsoa_code
),
targets AS (
    SELECT per.*, per.area_code AS lsoa_code, 1.0 AS w
    FROM per WHERE per.area_type = 'lsoa' AND per.area_code IN (SELECT lsoa_code FROM est_base)
    UNION ALL
    SELECT per.*, geo.lsoa_code, geo.ward_share * (geo.population + 1e-9) AS w
    FROM per JOIN geo ON per.area_type = 'ward' AND geo.ward_code = per.area_code
    UNION ALL
    SELECT per.*, d.lsoa_code, d.population + 1e-9 AS w
    FROM per JOIN (SELECT DISTINCT lsoa_code, msoa_code, la_code, population FROM geo) d
      ON (per.area_type = 'msoa' AND d.msoa_code = per.area_code)
      OR (per.area_type = 'la' AND d.la_code = per.area_code)
)
SELECT lsoa_code, extract_date,
       sum(persons * w / total_w) AS asylum_allocated
FROM (SELECT *, sum(w) OVER (PARTITION BY al_id, extract_date) AS total_w FROM targets)
WHERE persons > 0
GROUP BY lsoa_code, extract_date
