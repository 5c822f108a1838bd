-- ONS small-area population estimates as in the SAPE workbooks (one row per LSOA, a column per single
-- year 0 … 90+, no date or sex column) -> one row per LSOA × single year (age 90 is the open 90+): the
-- table `unpivoted` that base_population_bands.sql and base_population_single_years.sql read. The
-- reference date is the period column where present, else 30 June of the year in the file name
-- (mid-2019); the sex comes from the file name (males / females), else P (persons: the estimates split it).
WITH long AS (
    SELECT coalesce(period, make_date(CAST(regexp_extract(source_file, '(?i)mid-?(\d{4})', 1) AS INTEGER), 6, 30))
               AS reference_date,
           lsoa_code,
           CASE WHEN regexp_matches(lower(source_file), 'female') THEN 'F'
                WHEN regexp_matches(lower(source_file), '(^|[^a-z])males?([^a-z]|$)') THEN 'M'
                ELSE 'P' END AS sex,
           age_column, population, source_file
    FROM valid
    UNPIVOT (population FOR age_column IN (age_0, age_1, age_2, age_3, age_4, age_5, age_6, age_7, age_8, age_9, age_10, age_11, age_12, age_13, age_14, age_15, age_16, age_17, age_18, age_19, age_20, age_21, age_22, age_23, age_24, age_25, age_26, age_27, age_28, age_29, age_30, age_31, age_32, age_33, age_34, age_35, age_36, age_37, age_38, age_39, age_40, age_41, age_42, age_43, age_44, age_45, age_46, age_47, age_48, age_49, age_50, age_51, age_52, age_53, age_54, age_55, age_56, age_57, age_58, age_59, age_60, age_61, age_62, age_63, age_64, age_65, age_66, age_67, age_68, age_69, age_70, age_71, age_72, age_73, age_74, age_75, age_76, age_77, age_78, age_79, age_80, age_81, age_82, age_83, age_84, age_85, age_86, age_87, age_88, age_89, age_90plus))
)
SELECT reference_date, lsoa_code, sex,
       CAST(replace(replace(age_column, 'age_', ''), 'plus', '') AS INTEGER) AS age,
       population,
       'ons-sape-' || CAST(year(reference_date) AS VARCHAR) AS source,
       source_file
FROM long
