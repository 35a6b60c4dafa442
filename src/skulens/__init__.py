"""skulens: multimodal product intelligence for e-commerce catalogs."""

import os

__version__ = "0.1.0"

# OpenMP workers (PyTorch, BLAS) sleep between parallel regions instead of spinning: spinning
# workers starve other work on a busy machine (see skulens.threads). Set before any of them loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
