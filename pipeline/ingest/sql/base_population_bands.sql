-- A wide layout's single years (`unpivoted`: base_population_wide_unpivot.sql or
-- base_population_sape_unpivot.sql) -> base_population by ONS 5-year band.
SELECT u.reference_date, u.lsoa_code, u.sex, r.age_band,
       sum(u.population) AS population,
       u.source,
       u.source_file
FROM unpivoted u
JOIN ref_age r ON r.age = u.age
GROUP BY u.reference_date, u.lsoa_code, u.sex, r.age_band, u.source, u.source_file
