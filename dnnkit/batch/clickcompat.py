"""The Click that Typer uses: recent Typer vendors a trimmed copy (`typer._click`), older ones use `click`."""

from __future__ import annotations

from typer.core import TyperArgument as Argument
from typer.core import TyperGroup as Group
from typer.core import TyperOption as Option

try:  # recent typer vendors click; older releases use the click package
    from typer._click.core import Command, Context
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click import Command, Context, UsageError

__all__ = ["Argument", "Command", "Context", "Group", "Option", "UsageError"]
