"""skulens' own image-text space: contrastive projection heads on frozen encoders, trained on a catalog's
image-title pairs (LiT-style), and what it gives: zero-shot categories, text/image search, similar
products and near-duplicate listings.

The frozen features are the concatenation of the chosen image encoders (default EfficientNet-Lite0 + Lite2 +
the colour/HOG/LBP classical features) and text encoders (default MiniLM + a TF-IDF fitted on the
training titles). A saved model is a folder: ``config.json`` + ``weights.npz`` (numeric and string arrays,
read without pickle).

Probabilities (zero-shot) are a softmax over ``logit_scale * cosine``, with the temperature learned by
the contrastive loss; they are comparable across labels of one query, not calibrated per class.
"""

from skulens.tasks.align import common
from skulens.tasks.align.common import *  # noqa: F403 (re-exported: the task name, defaults and AlignmentError)
from skulens.tasks.align.dedupe import DedupeResult
from skulens.tasks.align.model import AlignmentModel
from skulens.tasks.align.search import similar_products

__all__ = [*common.__all__, "AlignmentModel", "DedupeResult", "similar_products"]
