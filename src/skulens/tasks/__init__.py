"""Task-level predictors: fit(catalog) / predict / evaluate / save / load."""
