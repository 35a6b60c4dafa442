"""Heads on frozen embeddings (scikit-learn contract) and their fusion across modalities."""

from skulens.heads.base import HeadError
from skulens.heads.fusion import FUSIONS, HEADS, EarlyFusion, LateFusion, make_fusion, make_head
from skulens.heads.linear import LinearProbe
from skulens.heads.mlp import MLPProbe

__all__ = ["FUSIONS", "HEADS", "EarlyFusion", "HeadError", "LateFusion", "LinearProbe", "MLPProbe", "make_fusion", "make_head"]
