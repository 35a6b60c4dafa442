"""Typer building blocks with skulens' help conventions: ``-h``/``--help``; arguments and flags shown by
their metavar alone, without Typer's ``<str>``/``<bool>`` type names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from skulens.cli.output import fail_with
from skulens.errors import SkulensError
from skulens.extras import MissingExtraError

HELP_NAMES = {"help_option_names": ["-h", "--help"]}


def _no_type(option):
    if option is not None:
        option.metavar = ""
    return option


def _no_type_name(ctx) -> None:
    return None


class Command(TyperCommand):
    """A command whose arguments and ``--help`` option show no type name; a feature whose extra is not
    installed ends it with one error line naming the extra (exit code 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.display_type_rich = _no_type_name

    def get_help_option(self, ctx):
        return _no_type(super().get_help_option(ctx))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MissingExtraError as exc:
            raise fail_with(exc) from None


class Group(TyperGroup):
    """A command group whose ``--help`` option shows no type, and the one place the CLI answers skulens'
    own errors: ``error[CODE]: message`` on stderr, exit code 2 (no traceback)."""

    def get_help_option(self, ctx):
        return _no_type(super().get_help_option(ctx))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SkulensError as exc:
            raise fail_with(exc) from None


def group(help: str, **kwargs: Any) -> typer.Typer:
    """A command group: shows its help when called without a command."""
    return typer.Typer(help=help, cls=Group, no_args_is_help=True, add_completion=False, context_settings=HELP_NAMES, **kwargs)


def add_commands(app: typer.Typer, *functions: Callable[..., None], **kwargs: Any) -> None:
    """Register each function as a command of ``app`` (named after the function)."""
    for function in functions:
        app.command(function.__name__, cls=Command, **kwargs)(function)


def flag(*names: str, help: str) -> Any:
    """An on/off option; its help shows no type."""
    return typer.Option(*names, help=help, metavar="")


#: ``--adapt-priors`` of the predict/evaluate commands of categorize and reviews.
AdaptPriors = Annotated[
    bool,
    flag(
        "--adapt-priors",
        help="Adapt to this data's class mix (a review file's star mix) without its labels: EM re-estimation of the "
        "class priors (Saerens et al. 2002); the estimated mix and whether EM converged are reported.",
    ),
]
