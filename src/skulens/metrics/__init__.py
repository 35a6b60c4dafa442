"""Metrics: classification, calibration, regression and bootstrap intervals. Sits below tasks and evaluation."""

from skulens.metrics.classification import (
    classification_metrics,
    expected_calibration_error,
    mean_std_ci,
    regression_metrics,
)
from skulens.metrics.intervals import bootstrap_ci, classification_intervals, review_intervals

__all__ = [
    "bootstrap_ci",
    "classification_intervals",
    "classification_metrics",
    "expected_calibration_error",
    "mean_std_ci",
    "regression_metrics",
    "review_intervals",
]
