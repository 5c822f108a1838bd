-- The GP list by LSOA x extract x single year of age (0 ... 90, 90 = 90+), counted by sex as recorded
-- (m, f and u: not known / indeterminate): every LSOA of the register, read off the register's
-- one counting pass (est_register_counts). The list by 5-year band (est_gp_cells) and by single
-- year (est_list_sya) are read off it.
SELECT lsoa_code, extract_date, age, m, f, u
FROM est_register_counts
WHERE counted_by = 'age'
