-- IMD 2019 (on 2011 LSOAs) carried to 2021 LSOAs with the ONS best-fit lookup
-- (ind_basket_lsoa11_lookup; change_code U unchanged, S split, M merged, X irregular):
--   U and S: each 2021 LSOA takes its 2011 parent's rank (a split 2011 LSOA's children share it);
--   M and X: a 2021 LSOA made from several 2011 LSOAs takes the mean of their ranks.
-- A 2021 LSOA missing from the lookup keeps an IMD row with its own code, if there is one.
-- National quintiles from the rank (1 = most deprived fifth of England's 32,844 LSOAs).
WITH mapped AS (
    SELECT l.lsoa21_code AS lsoa_code, avg(CAST(i.imd_rank AS DOUBLE)) AS imd_rank,
           count(*) AS parents, max(l.change_code) AS change_code
    FROM ind_basket_lsoa11_lookup l
    JOIN ind_basket_imd_raw i ON i.lsoa_code = l.lsoa11_code
    GROUP BY l.lsoa21_code
),
direct AS (
    SELECT i.lsoa_code, CAST(i.imd_rank AS DOUBLE) AS imd_rank, 1 AS parents, 'direct' AS change_code
    FROM ind_basket_imd_raw i
    WHERE i.lsoa_code NOT IN (SELECT lsoa_code FROM mapped)
),
allrows AS (SELECT * FROM mapped UNION ALL SELECT * FROM direct)
SELECT lsoa_code, imd_rank, parents, change_code,
       least(5, greatest(1, CAST(ceil(imd_rank / ({{ n_lsoas }} / 5.0)) AS INTEGER))) AS imd_quintile
FROM allrows
