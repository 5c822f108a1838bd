-- Languages new to an area: first languages (other than English and unrecorded) spoken by pupils
-- living in the ward or LA at a census that no pupil living there spoke at any earlier census.
-- The first census has nothing to compare with and is left out. `note` lists the new languages.
WITH spoken AS (
    SELECT DISTINCT ward_code AS area_code, 'ward' AS area_type, census_date, first_language
    FROM ind_basket_pupils WHERE eal AND first_language NOT IN ('OTH', 'OTB') AND ward_code IS NOT NULL
    UNION
    SELECT DISTINCT la_code AS area_code, 'la' AS area_type, census_date, first_language
    FROM ind_basket_pupils WHERE eal AND first_language NOT IN ('OTH', 'OTB') AND la_code IS NOT NULL
),
censuses AS (SELECT DISTINCT census_date FROM ind_basket_pupils),
areas AS (SELECT DISTINCT area_code, area_type FROM spoken),
new AS (
    SELECT s.area_code, s.census_date, s.first_language
    FROM spoken s
    WHERE NOT EXISTS (SELECT 1 FROM spoken e WHERE e.area_code = s.area_code
                      AND e.first_language = s.first_language AND e.census_date < s.census_date)
)
SELECT a.area_code, a.area_type, c.census_date AS period_start, c.census_date AS period_end, 'All' AS breakdown,
       count(n.first_language) AS value,
       coalesce(string_agg(n.first_language, ' ' ORDER BY n.first_language), '') AS note
FROM areas a
CROSS JOIN censuses c
LEFT JOIN new n ON n.area_code = a.area_code AND n.census_date = c.census_date
WHERE c.census_date > (SELECT min(census_date) FROM censuses)
GROUP BY a.area_code, a.area_type, c.census_date
