"""How the service answers skulens' own errors: an HTTP status and a response code per error class.

Looked up by type (each class's stable ``code``, most specific class first), never by message text, so
routes let :class:`~skulens.errors.SkulensError` propagate and the app's one handler answers it.
"""

from __future__ import annotations

from skulens.errors import SkulensError

#: Error class code -> (HTTP status, the ``error`` field of the JSON answer).
ERROR_STATUS: dict[str, tuple[int, str]] = {
    "image": (400, "invalid_image"),
    "unknown_product": (404, "unknown_product"),
    "no_index": (404, "no_index"),
    "index_mismatch": (409, "index_mismatch"),
    "search_index": (422, "invalid_request"),
    "alignment": (422, "invalid_query"),
    "caption": (422, "invalid_request"),
    "catalog": (422, "invalid_request"),
    "unknown_class": (404, "unknown_category"),
    "explain": (422, "invalid_request"),
    "missing_extra": (501, "extra_not_installed"),
}
#: Any other skulens error is the request's fault too (its own code is the answer's ``error``).
DEFAULT_STATUS = 422


def error_status(exc: SkulensError) -> tuple[int, str]:
    """(status, error code) of ``exc``: the entry of its most specific class listed in :data:`ERROR_STATUS`."""
    for cls in type(exc).__mro__:
        code = cls.__dict__.get("code") if isinstance(cls, type) and issubclass(cls, SkulensError) else None
        if code in ERROR_STATUS:
            return ERROR_STATUS[code]
    return DEFAULT_STATUS, exc.code
