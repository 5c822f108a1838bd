-- The GP list by LSOA x extract x single year of age (0 ... 90, 90 = 90+), counted by sex as recorded
-- (m, f and u: not known / indeterminate), in one pass over the register: every LSOA of the
-- register. The list by 5-year band (est_gp_cells) and by single year (est_list_sya) are read off it.
SELECT
    lsoa_code, extract_date, least(age, 90) AS age,
    count(*) FILTER (WHERE sex = 'M') AS m,
    count(*) FILTER (WHERE sex = 'F') AS f,
    count(*) FILTER (WHERE sex = 'U') AS u
FROM est_gp_patients
GROUP BY lsoa_code, extract_date, least(age, 90)
