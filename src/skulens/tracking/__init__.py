"""Experiment tracking: an MLflow tracker, a no-op tracker, and run listing/comparison helpers.

MLflow is imported only when a tracker or helper actually talks to a store, so importing this package
(and the CLI) stays fast.
"""

from skulens.tracking.store import DEFAULT_EXPERIMENT, DEFAULT_STORE, TrackingStore, resolve_store
from skulens.tracking.tracker import MlflowTracker, NoopTracker, Tracker, make_tracker

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_STORE",
    "MlflowTracker",
    "NoopTracker",
    "Tracker",
    "TrackingStore",
    "make_tracker",
    "resolve_store",
]
