# Expected values for tests/test_psa21_stats.py, computed with R's survey package (Lumley).
#   apt-get install -y r-cran-survey   (Debian)
#   cd tests/reference/raking && Rscript raking_example.R
# Writes expected_weights.csv (raked weight per respondent) and expected_estimates.csv
# (weighted share of `agree`, Kish design effect and effective n from the raked weights,
# and survey's own linearisation SE of the share, for reference).
suppressPackageStartupMessages(library(survey))
resp <- read.csv("worked_example.csv", stringsAsFactors = FALSE)
marg <- read.csv("margins.csv", stringsAsFactors = FALSE)
des <- svydesign(ids = ~1, weights = ~design_weight, data = resp)
pop_ward <- data.frame(ward = marg$level[marg$margin == "ward"],
                       Freq = marg$population[marg$margin == "ward"])
pop_age_sex <- data.frame(age_sex = marg$level[marg$margin == "age_sex"],
                          Freq = marg$population[marg$margin == "age_sex"])
raked <- rake(des, list(~ward, ~age_sex), list(pop_ward, pop_age_sex),
              control = list(maxit = 1000, epsilon = 1e-10, verbose = FALSE))
w <- weights(raked)
write.csv(data.frame(id = resp$id, weight = sprintf("%.10f", w)), "expected_weights.csv",
          row.names = FALSE, quote = FALSE)
share <- svymean(~agree, raked)
kish_deff <- length(w) * sum(w^2) / sum(w)^2
est <- data.frame(
  statistic = c("weighted_share", "kish_design_effect", "effective_n", "linearisation_se", "survey_version"),
  value = c(sprintf("%.10f", coef(share)[[1]]), sprintf("%.10f", kish_deff), sprintf("%.10f", length(w) / kish_deff),
            sprintf("%.10f", SE(share)[[1]]), as.character(packageVersion("survey"))))
write.csv(est, "expected_estimates.csv", row.names = FALSE, quote = FALSE)
print(est)
