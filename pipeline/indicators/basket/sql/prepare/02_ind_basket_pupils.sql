-- Pupils in the school census with the basket's groupings: the five census ethnic groups from the
-- DfE codes by the shared vocabulary (ref_ethnic_code: CHNE placed as [vocabulary] says), free
-- school meals and English as an additional language (first language known to be other than
-- English). Unclassified ethnicity / language is NULL and left out of those denominators.
SELECT p.census_date, p.pupil_id, p.urn, lower(p.phase) AS phase, p.lsoa_code, p.ward_code, p.la_code,
       CASE WHEN r.ethnic_group = 'Not stated' THEN NULL ELSE r.ethnic_group END AS ethnic_group,
       p.fsm_eligible,
       CASE WHEN p.first_language IN ('ENG', 'ENB') THEN FALSE
            WHEN p.first_language IN ('REFU', 'NOBT') OR p.first_language IS NULL THEN NULL
            ELSE TRUE END AS eal,
       p.first_language
FROM school_census p
LEFT JOIN ref_ethnic_code r ON r.scheme = 'dfe' AND r.code = upper(trim(p.ethnicity))
WHERE p.census_date IS NOT NULL AND p.urn IS NOT NULL
