-- One row per patient per extract, with age at the extract date, the ONS 5-year band and the
-- broad ethnic group. Sex other than M/F (U: not known / indeterminate) is kept as 'U' here and
-- apportioned to M/F pro rata in est_gp_cells. Patients without a usable date of birth (missing,
-- or after the extract date) cannot be banded and are left out (counted in the run log).
-- Patients whose postcode did not map were already quarantined by ingest.
WITH p AS (
    SELECT
        extract_date, patient_id, practice_code, lsoa_code, ward_code, msoa_code, la_code,
        CASE WHEN upper(sex) IN ('M', 'F') THEN upper(sex) ELSE 'U' END AS sex,
        date_of_birth,
        year(extract_date) - year(date_of_birth)
            - CASE WHEN month(extract_date) * 100 + day(extract_date)
                        < month(date_of_birth) * 100 + day(date_of_birth) THEN 1 ELSE 0 END AS age,
        coalesce(from_abroad, FALSE) AS from_abroad,
        upper(left(trim(coalesce(ethnic_category, '')), 1)) AS eth
    FROM est_src_gp_register
    WHERE lsoa_code IS NOT NULL AND extract_date IS NOT NULL
)
SELECT
    extract_date, patient_id, practice_code, lsoa_code, ward_code, msoa_code, la_code, sex,
    date_of_birth, age,
    CASE WHEN age >= 85 THEN '85+'
         ELSE CAST(age // 5 * 5 AS VARCHAR) || '-' || CAST(age // 5 * 5 + 4 AS VARCHAR) END AS age_band,
    from_abroad,
    CASE WHEN eth IN ('A', 'B', 'C') THEN 'White'
         WHEN eth IN ('D', 'E', 'F', 'G') THEN 'Mixed'
         WHEN eth IN ('H', 'J', 'K', 'L') THEN 'Asian'
         WHEN eth IN ('M', 'N', 'P') THEN 'Black'
         WHEN eth IN ('R', 'S') THEN 'Other'
         ELSE 'Not stated' END AS ethnic_group
FROM p
WHERE age IS NOT NULL AND age >= 0
