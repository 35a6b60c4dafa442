"""``python -m skulens.cli``: the same as the ``skulens`` command."""

from skulens.cli.main import app

app()
