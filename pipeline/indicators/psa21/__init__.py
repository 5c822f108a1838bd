"""PSA 21 indicators from the resident survey: `compute.py` is the map of the steps; `stage.py` declares the stage."""
