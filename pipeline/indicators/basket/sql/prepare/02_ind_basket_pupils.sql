-- Pupils in the school census with the basket's groupings: the five census ethnic groups (DfE
-- codes; CHNE under Asian unless {{ chinese_group }} says otherwise, as shared/spec/methods.md
-- asks), free school meals and English as an additional language (first language known to be
-- other than English). Unclassified ethnicity / language is NULL, left out of those denominators.
SELECT census_date, pupil_id, urn, lower(phase) AS phase, lsoa_code, ward_code, la_code,
       CASE WHEN ethnicity = 'CHNE' THEN {{ chinese_group }}
            WHEN ethnicity IN ('REFU', 'NOBT') OR ethnicity IS NULL THEN NULL
            WHEN ethnicity LIKE 'W%' THEN 'White'
            WHEN ethnicity LIKE 'M%' THEN 'Mixed'
            WHEN ethnicity LIKE 'A%' THEN 'Asian'
            WHEN ethnicity LIKE 'B%' THEN 'Black'
            ELSE 'Other' END AS ethnic_group,
       fsm_eligible,
       CASE WHEN first_language IN ('ENG', 'ENB') THEN FALSE
            WHEN first_language IN ('REFU', 'NOBT') OR first_language IS NULL THEN NULL
            ELSE TRUE END AS eal,
       first_language
FROM school_census
WHERE census_date IS NOT NULL AND urn IS NOT NULL
