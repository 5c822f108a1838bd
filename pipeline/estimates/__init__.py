"""Small-area population estimates, the COHDMAP way: GP list change, small birth/death
corrections, margins of error from population turbulence. See estimate.py for the model."""

from .estimate import estimate_populations

__all__ = ["estimate_populations"]
