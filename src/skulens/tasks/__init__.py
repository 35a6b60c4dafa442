"""Task-level predictors, each keeping the :class:`~skulens.tasks.predictor.Predictor` contract:
fit(data) / predict / predict_one / evaluate / save / load / encoder_identities."""
