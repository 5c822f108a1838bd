"""Reference values for tests/test_stats_segregation.py, computed with PySAL's `segregation` package.

    pip install 'segregation==2.5.4' && python benchmarks/reference_segregation.py

The pipeline does not depend on the package (it pulls geopandas and numba); this script is how the
pinned values in the test were made, so anyone can re-check them.
"""

import numpy as np
import pandas as pd
from segregation.inference.randomization import simulate_person_permutation
from segregation.singlegroup import Dissim, Entropy, Interaction, Isolation

CASES = {
    "four schools": ([10, 20, 5, 40], [100, 80, 60, 90]),
    "small schools, even mix": ([3, 2, 4, 3, 2, 3], [12, 10, 14, 11, 9, 12]),
}

for name, (group, total) in CASES.items():
    df = pd.DataFrame({"x": group, "t": total})
    print(name)
    for cls in (Dissim, Isolation, Interaction, Entropy):
        print(f"  {cls.__name__}: {cls(df, 'x', 't').statistic!r}")
    np.random.seed(0)
    draws = [simulate_person_permutation(df, group="x", total="t") for _ in range(1000)]
    for cls in (Dissim, Isolation):
        mean = np.mean([cls(d, "x", "t").statistic for d in draws])
        print(f"  {cls.__name__} expected under person permutation (1000 draws): {mean!r}")
