"""The sandbox templates render in, with bounds on what one render may cost.

Jinja's immutable sandbox keeps a template from Python's internals and from changing
values in place, and caps `range` at 100,000 items; it bounds neither memory nor time.
A shared template could write `{{ 'x' * 10000000000 }}` (10 GB, allocated while the
template compiles: Jinja folds constant expressions) or nest loops over `range(100000)`
until killed. `BoundedSandbox` refuses, with a `SecurityError` that the template loader
reports with the template's file and line:

- `*`, `+` and `~` whose result would be a string over MAX_TEXT characters or a list or
  tuple over MAX_ITEMS items, and the `join` and `center` filters past MAX_TEXT;
- `*` and `**` on whole numbers whose result would take over MAX_INT_BITS bits;
- over MAX_ITERATIONS loop iterations in one render (`for` loops and recursive
  `loop(...)` calls, all templates of the render together, includes too);
- a render whose output is over MAX_TEXT characters, or whose `{{ ... }}` together
  print over MAX_TEXT characters (counted where they print, inside `{% filter %}`,
  `{% set %}` blocks and macros too, before their output is joined).

The bounds are far above what a caption or prompt template needs (the bundled ones
render a few hundred characters in a few dozen iterations). They bound what the common
operators make, not every allocation a filter could make (a huge `%` or `format`
width, say), and a loop's literal text is bounded by the iterations only; the machine's
own limits remain the last line.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_join, pass_eval_context
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT = 1_000_000  # characters of a string made by an operator, and of one render
MAX_ITEMS = 100_000  # items of a list or tuple made by `*` or `+` (as Jinja's MAX_RANGE)
MAX_INT_BITS = 100_000  # bits of a whole number made by `*` or `**` (~30,000 digits)
MAX_ITERATIONS = 1_000_000  # loop iterations in one render


@dataclass
class _Budget:
    """What the render under way may still spend."""

    iterations: int
    printed: int


# None outside `one_render()`: then each loop has MAX_ITERATIONS of its own, and only the
# output as a whole is bounded.
_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_render_budget", default=None
)


@contextlib.contextmanager
def one_render() -> Iterator[None]:
    """Everything rendered inside shares one budget: MAX_ITERATIONS loop iterations and
    MAX_TEXT characters printed by `{{ ... }}`."""
    token = _budget.set(_Budget(MAX_ITERATIONS, MAX_TEXT))
    try:
        yield
    finally:
        _budget.reset(token)


def _counted_print(value: Any) -> Any:
    """`finalize` of every `{{ ... }}`: its text taken from the render's budget."""
    budget = _budget.get()
    if budget is not None:
        budget.printed -= len(value) if isinstance(value, str) else len(str(value))
        if budget.printed < 0:
            raise SecurityError(f"prints over the sandbox's {MAX_TEXT:,} characters in one render")
    return value


def _refuse_size(kind: str, size: int) -> None:
    """SecurityError when a value of `kind` (text, items) would be `size` long."""
    limit = MAX_TEXT if kind == "characters" else MAX_ITEMS
    if size > limit:
        raise SecurityError(f"the result would hold {size:,} {kind}, over the sandbox's {limit:,}")


def _size_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "characters"
    if isinstance(value, list | tuple):
        return "items"
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(
            f"the result would be a number of about {bits:,} bits, over the sandbox's "
            f"{MAX_INT_BITS:,}"
        )


def _check_binop(op: str, left: Any, right: Any) -> None:
    """SecurityError before `left op right` is computed when its result would be too big."""
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if _size_kind(seq) and isinstance(times, int):
                _refuse_size(_size_kind(seq), len(seq) * max(times, 0))
        if _whole(left) and _whole(right):
            _refuse_bits(left.bit_length() + right.bit_length())
    elif op == "+" and _size_kind(left) and type(left) is type(right):
        _refuse_size(_size_kind(left), len(left) + len(right))
    elif op == "**" and _whole(left) and _whole(right) and right > 0:
        _refuse_bits(max(abs(left).bit_length() - 1, 0) * right)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with every `for` loop's iterable counted and every `~`
    bounded, through methods of the environment the template is compiled for, called
    directly (they are the sandbox's own, not the template's to call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop_iterables: set[int] = set()  # ids of the `for` iterables being written

    def visit_For(self, node: nodes.For, frame) -> None:
        self._loop_iterables.add(id(node.iter))
        try:
            super().visit_For(node, frame)
        finally:
            self._loop_iterables.discard(id(node.iter))

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in self._loop_iterables:
            return super().visit(node, *args, **kwargs)
        self.write("environment.counted_iterations(")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _bounded_join(parts: Iterable[Any]) -> str:
    """`"".join` of a render's output, stopped once it passes MAX_TEXT characters."""
    out, total = [], 0
    for part in parts:
        total += len(part)
        if total > MAX_TEXT:
            raise SecurityError(f"renders over the sandbox's {MAX_TEXT:,} characters")
        out.append(part)
    return "".join(out)


@pass_eval_context
def _join(eval_ctx, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """Jinja's `join`, refused past MAX_TEXT characters before the string is made."""
    items = list(value)
    texts = [str(v) for v in items] if attribute is None else None
    if texts is not None:
        _refuse_size("characters", sum(map(len, texts)) + len(str(d)) * max(len(texts) - 1, 0))
    return do_join(eval_ctx, items, d, attribute)


def _center(value: str, width: int = 80) -> str:
    _refuse_size("characters", width)
    return do_center(value, width)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the bounds of this module (see its docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+"})
    concat = staticmethod(_bounded_join)  # what Template.render joins the output with

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.finalize = _counted_print
        self.filters.update({"join": _join, "center": _center})

    def call_binop(self, context, op: str, left: Any, right: Any) -> Any:
        _check_binop(op, left, right)
        return self.binop_table[op](left, right)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:
        # A recursive loop's `loop(children)` iterates outside the `for` it was written in.
        if isinstance(__obj, LoopContext) and args:
            args = (__self.counted_iterations(args[0]), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    @staticmethod
    def counted_iterations(iterable: Iterable[Any]) -> Iterator[Any]:
        """`iterable`'s items, each taken from the render's budget of iterations."""
        budget = _budget.get() or _Budget(MAX_ITERATIONS, MAX_TEXT)
        for item in iterable:
            budget.iterations -= 1
            if budget.iterations < 0:
                raise SecurityError(
                    f"over the sandbox's {MAX_ITERATIONS:,} loop iterations in one render"
                )
            yield item

    @staticmethod
    def bounded_concat(parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ ...`, refused before the string is made past MAX_TEXT characters."""
        texts = [str(p) for p in parts]
        _refuse_size("characters", sum(map(len, texts)))
        return "".join(texts)
