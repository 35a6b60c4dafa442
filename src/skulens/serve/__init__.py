"""The skulens HTTP service: ``create_app(models_dir)`` (FastAPI) and the ``serve`` / ``ui`` commands."""
