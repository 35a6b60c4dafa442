"""Optional features and the pip extras that bring them.

``pip install skulens`` installs the core (catalogs, encoders, categorize, reviews, search). Each other
feature names its extra: ``pip install 'skulens[serve]'``. Code that needs an extra calls
:func:`require_extra` before importing it, so a missing package gives one clear error naming the extra
instead of an ``ImportError`` from deep inside a command.
"""

from __future__ import annotations

import importlib.util

from skulens.errors import SkulensError

#: Each extra and the modules it provides (import names, not distribution names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "python_multipart"),
    "ui": ("streamlit", "plotly"),
    "ray": ("ray",),
    "track": ("mlflow",),
    "explain": ("captum", "plotly"),
    "caption": ("sacrebleu", "rouge_score", "pycocoevalcap"),
    "explore": ("plotly", "umap", "gensim"),
}


class MissingExtraError(SkulensError, ImportError):
    """A feature needs packages of an extra that is not installed; the message says what to install."""

    code = "missing_extra"

    def __init__(self, extra: str, missing: list[str], feature: str | None = None) -> None:
        self.extra, self.missing = extra, missing
        super().__init__(
            f"{feature or 'this feature'} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'skulens[{extra}]'"
        )


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a half-removed module
        return False


def require_extra(extra: str, *modules: str, feature: str | None = None) -> None:
    """Raise :class:`MissingExtraError` unless ``modules`` (default: all of ``extra``'s) can be imported.

    ``feature`` names what needs them in the message (``"the HTTP service needs the 'serve' extra ..."``).
    """
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra '{extra}'; known: {', '.join(EXTRAS)}")
    missing = [module for module in modules or EXTRAS[extra] if not installed(module)]
    if missing:
        raise MissingExtraError(extra, missing, feature)
