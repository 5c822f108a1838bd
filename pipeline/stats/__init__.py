"""Statistics public-health analysts trust, one module per statistic (PHEindicatormethods style).

Every function checks its inputs first (messages say how to fix the problem), returns fixed
columns that name the confidence level (``lower_95``, ``upper_99_8``), and is a pure function of
its arguments. Where DHSC's `PHStatsMethods` (the Python port of PHEindicatormethods) computes
a statistic, it is used; the tests pin each statistic to published reference values.

| module | statistic |
|---|---|
| `proportion` | proportions with Wilson score limits |
| `compare` | significance against a comparator (Fingertips: higher / similar / lower) |
| `design_effect` | Kish's design effect of unequal weights and the effective sample size |
| `weighted_proportion` | weighted survey shares with Wilson limits on the effective sample size (one group, or many) |
| `raking` | raking survey weights to population margins (svy), trimming, thin cells pooled |
| `fay_herriot` | area-level Fay-Herriot EBLUP with Prasad-Rao MSE; for proportions on the logit scale |
| `rate` | crude rates with Byar's (x >= 10) or exact Poisson limits |
| `funnel` | funnel-plot limits around the pooled value, with Spiegelhalter's overdispersion option |
| `segregation` | dissimilarity, isolation, exposure, entropy, with expected values under random allocation; diversity |
| `trend` | score tests for a linear trend across periods (rates; proportions as Cochran-Armitage) |
| `early_warning` | a period beyond what the area's history makes plausible (Farrington thresholds) |
"""
