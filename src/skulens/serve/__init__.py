"""The skulens HTTP service: ``create_app(models_dir)`` (FastAPI) and the ``serve`` / ``ui`` commands."""

from skulens.extras import require_extra

require_extra("serve", feature="the HTTP service")
