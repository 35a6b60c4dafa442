"""Metrics: classification, calibration, regression and intervals. Sits below tasks and evaluation."""

from skulens.metrics.classification import (
    classification_metrics,
    expected_calibration_error,
    mean_std_ci,
    regression_metrics,
)

__all__ = ["classification_metrics", "expected_calibration_error", "mean_std_ci", "regression_metrics"]
