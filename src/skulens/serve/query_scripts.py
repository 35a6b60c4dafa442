"""The scripts the service's search and zero-shot requests may be written in, checked and declared alike.

An alignment model refuses a query written only in scripts it never saw in training (a Latin-trained
model answers a Chinese query with noise). The service applies that rule for the scripts *every* loaded
alignment model was trained on, before any model runs, and declares the same rule in its OpenAPI schema
as ``pattern`` s, so a request the schema allows is never refused for its script and one it forbids always is:

- a query text, the zero-shot product text and each label: a letter of those scripts, or no letter at all;
- a prompt template: no letter of any other script (then every prompt, template with a label put in, passes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from skulens.serve.schemas import NOT_BLANK_PATTERN
from skulens.tasks.scripts import count_scripts, letter_class, reads_scripts


@dataclass(frozen=True)
class QueryScripts:
    """The scripts every loaded alignment model reads (see the module docstring)."""

    scripts: frozenset[str]

    @classmethod
    def of(cls, predictors: Iterable) -> QueryScripts | None:
        """The scripts the alignment ``predictors`` all read; None when none records its scripts (no rule)."""
        recorded = [frozenset(p.scripts_) for p in predictors if getattr(p, "scripts_", None)]
        return cls(frozenset.intersection(*recorded)) if recorded else None

    @property
    def _known(self) -> str:
        return ", ".join(sorted(self.scripts)) or "no"

    def refusal(self, text: str | None, what: str) -> str | None:
        """Why a query/label ``text`` is refused (None when it passes)."""
        if not text or reads_scripts(text, self.scripts):
            return None
        return (
            f"the {what} is written in {', '.join(sorted(count_scripts(text)))} script, but the search models of this "
            f"service were trained on {self._known} text only; write it in that script"
        )

    def template_refusal(self, template: str) -> str | None:
        """Why a prompt ``template`` is refused (None when it passes)."""
        unseen = sorted(set(count_scripts(template)) - self.scripts)
        if not unseen:
            return None
        return (
            f"the template '{template[:60]}' has letters in {', '.join(unseen)} script, but the search models of this "
            f"service were trained on {self._known} text only; write templates in that script"
        )

    # ---- the same rules as JSON Schema patterns ----------------------------------------------------------
    @property
    def text_pattern(self) -> str:
        known, letters = letter_class(self.scripts), letter_class(frozenset(), inside=False)
        return f"[{known}]|^[^{letters}]*$" if known else f"^[^{letters}]*$"

    @property
    def label_pattern(self) -> str:
        """:attr:`text_pattern` and not blank."""
        known, letters = letter_class(self.scripts), letter_class(frozenset(), inside=False)
        blank = NOT_BLANK_PATTERN[2:-1]  # the characters counted as blank, from "[^...]"
        no_letters = f"^[^{letters}]*[^{letters}{blank}][^{letters}]*$"
        return f"[{known}]|{no_letters}" if known else no_letters

    @property
    def template_pattern(self) -> str:
        other = letter_class(self.scripts, inside=False)
        return f"^[^{other}]*\\{{label\\}}[^{other}]*$"

    def declare(self, schemas: dict) -> None:
        """Put the patterns into the OpenAPI ``components.schemas`` of the search and zero-shot requests."""
        for name in ("SearchRequest", "ZeroShotRequest"):
            text = schemas.get(name, {}).get("properties", {}).get("text", {})
            for branch in text.get("anyOf", []):
                if branch.get("type") == "string":
                    branch["pattern"] = self.text_pattern
        zero_shot = schemas.get("ZeroShotRequest", {}).get("properties", {})
        if "items" in zero_shot.get("labels", {}):
            zero_shot["labels"]["items"]["pattern"] = self.label_pattern
        for branch in zero_shot.get("templates", {}).get("anyOf", []):
            if branch.get("type") == "array":
                branch["items"]["pattern"] = self.template_pattern
