"""Start-up: option values Click already delivers in their final type skip Typer's pydantic step.

Typer (0.2x) converts every option value through a pydantic ``TypeAdapter`` built on the
option's first use. Importing pydantic and building the adapters costs about 80 ms per command
on this project's machine (measured: docs/benchmarks.md "Start-up"), paid even by
``usagectl report --help``, whose global options are processed before the help is printed.
For two kinds of value the adapter is the identity:

- an absent option (``None``): Typer's own coercion returns ``None`` (``()`` for a multiple
  option) before it looks at the adapter;
- a ``str`` for an option annotated ``str`` (or ``str | None``) without a custom ``parser``:
  the adapter's string step returns a ``str`` unchanged.

:func:`install` answers those two cases directly and builds Typer's own coercion, unchanged,
for every other value (numbers with bounds, choices, paths, dates, lists). Nothing changes
what a command receives (the whole CLI suite runs with it); a Typer without this machinery
(older or newer than the one it was written for) is left alone.
"""

from __future__ import annotations

from typing import Any


class _LazyCoercion:
    """Typer's runtime coercion of one parameter, built only when a value needs it."""

    __slots__ = ("_built", "_descriptor", "_plain_str")

    def __init__(self, descriptor: Any) -> None:
        self._descriptor = descriptor
        self._built: Any = None
        info = descriptor.parameter_info
        self._plain_str = (descriptor.annotation is str and descriptor.file_annotation is None
                           and getattr(info, "parser", None) is None)

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        if self._plain_str and not multiple and type(value) is str:
            return value
        if self._built is None:
            from typer._coercion import build_runtime_param

            self._built = build_runtime_param(self._descriptor)
        return self._built.coerce(value, param=param, ctx=ctx)


def install() -> bool:
    """Make Typer build its coercion lazily, as described above. True if it was installed."""
    try:
        from typer._coercion import build_runtime_param  # noqa: F401 — present in this Typer?
        from typer.core import _TyperParameter
    except ImportError:
        return False
    if getattr(_TyperParameter, "_usagectl_lazy", False):
        return True
    if not callable(getattr(_TyperParameter, "get_runtime_param", None)):
        return False

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            self._runtime_param = _LazyCoercion(self.type_descriptor)
        return self._runtime_param

    _TyperParameter.get_runtime_param = get_runtime_param
    _TyperParameter._usagectl_lazy = True
    return True
