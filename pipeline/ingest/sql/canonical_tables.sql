-- The canonical tables every later stage reads (ARCHITECTURE.md). Created empty at the start of
-- a run, so a source with no files still yields its (empty) table.
-- Geography columns (lsoa_code … la_code) are filled from the postcode directory on load.

CREATE TABLE postcode_directory (
    postcode VARCHAR, lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    lat DOUBLE, lon DOUBLE, lsoa_name VARCHAR, msoa_name VARCHAR, ward_name VARCHAR, la_name VARCHAR,
    source_file VARCHAR, source_line BIGINT);

-- an area lookup without postcodes (lsoa -> msoa, ward, la where the file has them)
CREATE TABLE area_lookup (
    lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    lsoa_name VARCHAR, msoa_name VARCHAR, ward_name VARCHAR, la_name VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE area_names (area_code VARCHAR, area_name VARCHAR, area_type VARCHAR, source_file VARCHAR, source_line BIGINT);

CREATE TABLE gp_register (
    extract_date DATE, patient_id VARCHAR, practice_code VARCHAR, postcode VARCHAR, sex VARCHAR,
    date_of_birth DATE, registration_date DATE, from_abroad BOOLEAN, ethnic_category VARCHAR,
    lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE gp_movements (
    patient_id VARCHAR, practice_code VARCHAR, postcode VARCHAR, event_date DATE, event VARCHAR, reason VARCHAR,
    lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE gp_counts (
    extract_date DATE, practice_code VARCHAR, practice_name VARCHAR, lsoa_code VARCHAR, sex VARCHAR, age_band VARCHAR,
    patients BIGINT, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

-- practice x sex x single year of age (age '0' … '95+'), all of each practice's patients
CREATE TABLE gp_practice_age (
    extract_date DATE, practice_code VARCHAR, sex VARCHAR, age VARCHAR, patients BIGINT,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE school_census (
    census_date DATE, pupil_id VARCHAR, urn VARCHAR, school_name VARCHAR, phase VARCHAR, nc_year VARCHAR,
    sex VARCHAR, ethnicity VARCHAR, ethnic_major VARCHAR, first_language VARCHAR, fsm_eligible BOOLEAN,
    entry_date DATE, home_postcode VARCHAR, home_lsoa VARCHAR,
    lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE school_counts (
    census_date DATE, urn VARCHAR, school_name VARCHAR, phase VARCHAR, characteristic VARCHAR, "group" VARCHAR,
    pupils BIGINT, source_file VARCHAR, source_line BIGINT);

CREATE TABLE survey_responses (
    survey_id VARCHAR, respondent_id VARCHAR, interview_date DATE, area VARCHAR, area_type VARCHAR,
    lsoa_code VARCHAR, msoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    sex VARCHAR, age_band VARCHAR, ethnic_group VARCHAR, religion VARCHAR, disability BOOLEAN, weight DOUBLE,
    q_get_on INTEGER, q_belong INTEGER, q_influence INTEGER,
    q_mix_home INTEGER, q_mix_work INTEGER, q_mix_school INTEGER, q_mix_pub INTEGER,
    q_mix_group INTEGER, q_mix_worship INTEGER, q_mix_shops INTEGER,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE vital_events (
    period_start DATE, period_end DATE, area_code VARCHAR, area_type VARCHAR, sex VARCHAR, age_band VARCHAR,
    births BIGINT, deaths BIGINT, lsoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE asylum_allocations (
    period_start DATE, period_end DATE, area_code VARCHAR, area_type VARCHAR, persons_allocated BIGINT,
    lsoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);

CREATE TABLE asylum_support (
    reference_date DATE, la_code VARCHAR, la_name VARCHAR, support_type VARCHAR, accommodation_type VARCHAR,
    people BIGINT, source_file VARCHAR, source_line BIGINT);

CREATE TABLE base_population (
    reference_date DATE, lsoa_code VARCHAR, sex VARCHAR, age_band VARCHAR, population DOUBLE, source VARCHAR,
    source_file VARCHAR);

-- the base population by single year of age (0 … 90, 90 = 90+) where the layout has single years;
-- sex M, F, or P (persons only)
CREATE TABLE base_population_sya (
    reference_date DATE, lsoa_code VARCHAR, sex VARCHAR, age INTEGER, population DOUBLE, source VARCHAR,
    source_file VARCHAR);

CREATE TABLE incidents (
    period_start DATE, period_end DATE, area_code VARCHAR, area_type VARCHAR, category VARCHAR, count BIGINT,
    lsoa_code VARCHAR, ward_code VARCHAR, la_code VARCHAR,
    source_file VARCHAR, source_line BIGINT);
