"""What the service and the UI share: the model registry, the micro-batcher, in-memory product inputs.

No modelling happens here; predictions come from the predictors (``skulens.tasks``).
"""

from skulens.runtime.batcher import MicroBatcher
from skulens.runtime.inputs import image_resolution, prepare_image, product_text, top_k_from_proba
from skulens.runtime.registry import (
    TASK_PREDICTORS,
    LoadedModel,
    ModelLoadError,
    default_models,
    load_models,
    model_folders,
    task_models,
)

__all__ = [
    "TASK_PREDICTORS",
    "LoadedModel",
    "MicroBatcher",
    "ModelLoadError",
    "default_models",
    "image_resolution",
    "load_models",
    "model_folders",
    "prepare_image",
    "product_text",
    "task_models",
    "top_k_from_proba",
]
