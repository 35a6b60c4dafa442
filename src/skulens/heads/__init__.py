"""Heads on frozen embeddings (scikit-learn contract) and their fusion across modalities.

``MLPProbe`` (PyTorch) is imported on first use, so code using only linear heads never loads torch.
"""

from typing import Any

from skulens.heads.base import HeadError
from skulens.heads.fusion import FUSIONS, HEADS, EarlyFusion, LateFusion, make_fusion, make_head
from skulens.heads.linear import LinearProbe

__all__ = ["FUSIONS", "HEADS", "EarlyFusion", "HeadError", "LateFusion", "LinearProbe", "MLPProbe", "make_fusion", "make_head"]


def __getattr__(name: str) -> Any:
    if name == "MLPProbe":
        from skulens.heads.mlp import MLPProbe

        return MLPProbe
    raise AttributeError(f"module 'skulens.heads' has no attribute {name!r}")
