"""Why a model predicted what it did: Grad-CAM on photos, word attributions, photo vs text contributions.

Sits beside evaluation and runtime: it reads tasks, heads and encoders; nothing below imports it.
"""

from skulens.explain.heads import ExplainError
from skulens.explain.modality import CONFLICT_CONFIDENCE, ModalityContribution
from skulens.explain.product import ProductExplanation, explain_product

__all__ = ["CONFLICT_CONFIDENCE", "ExplainError", "ModalityContribution", "ProductExplanation", "explain_product"]
