-- view: the register row by row is read only by the steps that aggregate it (est_gp_ages, est_ethnic_counts,
-- est_gp_flows, est_lsoa_geo), each in its own pass; kept as a table it was a copy of every patient
-- of every extract (124 million rows at national scale).
-- One row per patient per extract, with age at the extract date, the ONS 5-year band (ref_age) and
-- the census ethnic group of the NHS ethnic category (ref_ethnic_code). Sex other than M/F (U: not known / indeterminate) is kept as 'U' here and
-- apportioned to M/F pro rata in est_gp_cells. Patients without a usable date of birth (missing,
-- or after the extract date) cannot be banded and are left out (counted in the run log).
-- Patients whose postcode did not map were already quarantined by ingest.
-- Sex and the NHS ethnic category are normalised (upper case; the category's first letter) only where the
-- value is not already in that form: ingest writes sex as M/F/U and most categories are one capital, and
-- the string functions cost more than the rest of a row's work (124 million rows at national scale).
WITH p AS (
    SELECT
        extract_date, patient_id, practice_code, lsoa_code, ward_code, msoa_code, la_code,
        CASE WHEN sex IN ('M', 'F') THEN sex WHEN upper(sex) IN ('M', 'F') THEN upper(sex) ELSE 'U' END AS sex,
        date_of_birth,
        year(extract_date) - year(date_of_birth)
            - CASE WHEN month(extract_date) * 100 + day(extract_date)
                        < month(date_of_birth) * 100 + day(date_of_birth) THEN 1 ELSE 0 END AS age,
        coalesce(from_abroad, FALSE) AS from_abroad,
        CASE WHEN length(ethnic_category) = 1 AND ethnic_category BETWEEN 'A' AND 'Z' THEN ethnic_category
             ELSE upper(left(trim(coalesce(ethnic_category, '')), 1)) END AS eth
    FROM est_src_gp_register
    WHERE lsoa_code IS NOT NULL AND extract_date IS NOT NULL
)
SELECT
    p.extract_date, p.patient_id, p.practice_code, p.lsoa_code, p.ward_code, p.msoa_code, p.la_code, p.sex,
    p.date_of_birth, p.age, a.age_band, p.from_abroad,
    coalesce(e.ethnic_group, 'Not stated') AS ethnic_group
FROM p
JOIN ref_age a ON a.age = least(p.age, 120)
LEFT JOIN ref_ethnic_code e ON e.scheme = 'nhs' AND e.code = p.eth
