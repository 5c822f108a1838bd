-- Registered patients by ward, sex and single year of age on the GP extract nearest the
-- fieldwork ({{ extract_date }}): how each 5-year band splits into single years, so that survey
-- bands that cut a 5-year band (16-24 cuts 15-19) are built from counts, not assumed shares.
SELECT
    ward_code,
    sex,
    age,
    count(*) AS patients
FROM (
    SELECT
        ward_code,
        sex,
        date_diff('year', date_of_birth, extract_date)
            - CASE WHEN month(extract_date) * 100 + day(extract_date)
                        < month(date_of_birth) * 100 + day(date_of_birth) THEN 1 ELSE 0 END AS age
    FROM gp_register
    WHERE extract_date = {{ extract_date }}
      AND ward_code IS NOT NULL
      AND sex IN ('M', 'F')
      AND date_of_birth IS NOT NULL
) AS patients
WHERE age BETWEEN 0 AND 120
GROUP BY ward_code, sex, age
