"""Loaded models shared by the service and the UI: model registry and micro-batcher (no modelling)."""
