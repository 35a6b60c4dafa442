"""Quiet model loading: no third-party progress bars or info lines while transformers models load."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' and huggingface_hub's progress bars ("Loading weights ...") and their
    and sentence-transformers' info/warning logs for the duration; the previous settings come back after."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    sentence_logger = logging.getLogger("sentence_transformers")
    level = sentence_logger.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    sentence_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        sentence_logger.setLevel(level)
