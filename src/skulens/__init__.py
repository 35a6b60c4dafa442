"""skulens: multimodal product intelligence for e-commerce catalogs."""

__version__ = "0.1.0"
