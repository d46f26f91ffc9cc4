"""The one Jinja environment of the project: caption rules (`templates/`) and prompts.

`load_template(name, folders, inputs, samples, blocks)` returns a `LoadedTemplate`: the
compiled template, its name and a content hash that covers every template it includes
or imports. A template that cannot work fails here, at load, with its file and line:

- syntax errors and unknown filters or tests (Jinja reports these when compiling);
- a variable that is neither a documented input nor set by the template itself
  (static analysis of the template and everything it includes, over all branches);
- anything that fails while rendering the caller's sample contexts under
  `StrictUndefined`: a misspelt attribute (`ego.moton`), a phrase table that lacks a
  value of the taxonomy, a required block that is missing.

Templates are files users share and download, so they render in Jinja's immutable
sandbox: no attribute starting with `_`, no method that changes a list or dict, no
Python object reachable from a template. A template that tries (`cycler.__init__...`)
fails while its samples render, at load, as a TemplateLoadError naming its file and line;
so does one past the sandbox's bounds on size and loop iterations (core/sandbox.py), and
a template file that is not UTF-8 (the line of its first bad byte).

Output text is the template's own; callers strip the ends. Templates that produce
prose wrap themselves in `{% filter prose %}` to collapse whitespace (see the filters).

Over 400 lines: loading, the static check of inputs and the error reports that name a
file and line are one path; the sandbox's bounds live apart (core/sandbox.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import (
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    modifies_known_mutable,
)

from vlm_autodrive.builders.core.sandbox import BoundedSandbox, one_render

# Names every template may use without declaring them: Jinja's own globals.
_JINJA_NAMES = {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "super"}


# Attribute names the immutable sandbox refuses on any object, found before rendering so
# that a branch the samples never take is refused too: Python internals and the methods
# that change a list, dict or set in place.
_UNSAFE_ATTRIBUTES = (
    UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | {"gi_yieldfrom", "cr_frame", "cr_code", "ag_code", "ag_frame"}
    | {n for t in (list, dict, set) for n in dir(t) if modifies_known_mutable(t(), n)}
)


class TemplateLoadError(ValueError):
    """A template that cannot be used: the message names its file and the problem."""


_SPACE_BEFORE_PUNCT = re.compile(r" ([.,;:!?])")


def _prose(text: str) -> str:
    """Collapse all whitespace to single spaces (templates write one sentence a line) and
    drop a space before punctuation (left where an optional phrase came out empty)."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(str(text).split()))


def _article(noun: str) -> str:
    """`truck` -> `a truck`, `object` -> `an object` (by the first letter; good enough)."""
    noun = str(noun)
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _join_and(items: Iterable[Any]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    words = [str(i) for i in items]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _sentence(text: str) -> str:
    """Capitalise the first letter only (`capitalize` would lower-case the rest)."""
    text = str(text)
    return text[:1].upper() + text[1:]


FILTERS: dict[str, Callable[..., Any]] = {
    "prose": _prose,
    "article": _article,
    "join_and": _join_and,
    "sentence": _sentence,
}


class _ConfinedLoader(jinja2.FileSystemLoader):
    """FileSystemLoader that refuses a template whose real path leaves the folder it was
    found in: a shared folder's symbolic link to ~/.ssh/id_rsa would otherwise be
    included into every row. (`..` and absolute names Jinja refuses itself.)"""

    def get_source(self, environment, template):
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except UnicodeDecodeError as e:
            raise self._not_utf8(template, e) from None
        real = Path(filename).resolve()
        if not any(real.is_relative_to(Path(f).resolve()) for f in self.searchpath):
            raise TemplateLoadError(
                f"{filename}: a symbolic link to {real}, outside the template folders "
                f"({', '.join(self.searchpath)}): copy the file into the folder instead"
            )
        return source, filename, uptodate

    def _not_utf8(self, template: str, err: UnicodeDecodeError) -> TemplateLoadError:
        """The file Jinja could not decode (the first one on the search path, as Jinja
        looks) and the line of the first bad byte: Jinja's own error names neither."""
        for folder in self.searchpath:
            path = Path(folder, *split_template_path(template))
            if path.is_file():
                line = path.read_bytes()[: err.start].count(b"\n") + 1
                bad = err.object[err.start]
                return TemplateLoadError(f"{path}:{line}: not UTF-8 text (byte {bad:#04x})")
        return TemplateLoadError(f"{template}: not UTF-8 text")


@functools.lru_cache(maxsize=16)
def environment(folders: tuple[str, ...]) -> jinja2.Environment:
    """The environment for a search path of template folders (first match wins).

    Cached so that every template of one folder set shares one environment and its
    compiled-template cache. `autoescape` is off: the output is text, not HTML. The
    sandbox keeps a shared template from reading files or running code, and bounds
    what one render may cost (builders/core/sandbox.py).
    """
    env = BoundedSandbox(
        loader=_ConfinedLoader(list(folders)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,  # an edited template is re-read in a long-lived process
    )
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class LoadedTemplate:
    """A compiled template with its name and the hash of its source and dependencies."""

    name: str
    template: jinja2.Template = field(repr=False)
    sha256: str
    # (name, sha256 of its source) for this template and every one it includes/imports
    source_hashes: tuple[tuple[str, str], ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.source_hashes)

    @property
    def ref(self) -> str:
        """`name@hash12`: what a row's `template` column records."""
        return f"{self.name}@{self.sha256[:12]}"

    def render(self, context: Mapping[str, Any]) -> str:
        """The whole template rendered, ends stripped."""
        try:
            with one_render():
                return self.template.render(context).strip()
        except SecurityError as e:
            raise self._refused(e) from None

    def render_block(self, block: str, context: Mapping[str, Any]) -> str:
        """One `{% block %}` rendered on its own, ends stripped."""
        ctx = self.template.new_context(dict(context))
        env = self.template.environment
        try:
            try:
                with one_render():
                    return env.concat(self.template.blocks[block](ctx)).strip()
            except Exception:
                # As Template.render does: rewrite the traceback so that its template frames
                # carry the template's own lines, not those of the compiled Python.
                self.template.environment.handle_exception()
                raise  # not reached: handle_exception raises
        except SecurityError as e:
            raise self._refused(e) from None

    def _refused(self, err: SecurityError) -> TemplateLoadError:
        """What the sandbox stopped at render time (a name computed past the load-time
        check, a bound of core/sandbox.py a row's values passed): a bad-input error naming
        the template's file and line, as at load."""
        file, line = _template_frame(err, self.sources)
        env = self.template.environment
        where = f"{_where(env, file)}:{line}" if file else _where(env, self.name)
        return TemplateLoadError(f"{where}: SecurityError: {err} (templates render in a sandbox)")


def load_template(
    name: str,
    folders: Sequence[str | Path],
    inputs: Collection[str],
    samples: Iterable[Mapping[str, Any]] = (),
    blocks: Collection[str] = (),
) -> LoadedTemplate:
    """Load `name` (a path relative to a folder, e.g. `captions/detailed.jinja`) and check it.

    `inputs` are the variable names the caller will pass; `samples` are complete
    contexts (every input present) rendered once each so that runtime errors surface
    now; `blocks` are block names the template must define. Raises TemplateLoadError
    naming the template file, the line and the problem.
    """
    env = environment(tuple(str(Path(f)) for f in folders))
    template = _compile(env, name)
    sources = _closure(env, name)
    _refuse_unsafe(env, name, sources)
    _check_names(env, name, sources, set(inputs))
    missing = [b for b in blocks if b not in template.blocks]
    if missing:
        raise TemplateLoadError(
            f"{_where(env, name)}: missing block(s) {missing}; it must define "
            + ", ".join(f"{{% block {b} %}}" for b in blocks)
        )
    hashes = tuple(
        (src, hashlib.sha256(_source(env, src).encode("utf-8")).hexdigest()) for src in sources
    )
    total = hashlib.sha256("\n".join(f"{n} {h}" for n, h in hashes).encode()).hexdigest()
    loaded = LoadedTemplate(name, template, total, hashes)
    for sample in samples:
        _try_render(env, loaded, sample, blocks)
    return loaded


def _compile(env: jinja2.Environment, name: str) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound as e:
        where = ", ".join(env.loader.searchpath)  # type: ignore[union-attr]
        raise TemplateLoadError(f"template {e.name!r} not found in {where}") from None
    except jinja2.TemplateSyntaxError as e:
        raise TemplateLoadError(
            f"{e.filename or e.name}:{e.lineno}: {e.message}"
            + (f" (in a template {name} uses)" if e.name != name else "")
        ) from None


def _source(env: jinja2.Environment, name: str) -> str:
    return env.loader.get_source(env, name)[0]  # type: ignore[union-attr]


def _where(env: jinja2.Environment, name: str) -> str:
    try:
        return env.loader.get_source(env, name)[1] or name  # type: ignore[union-attr]
    except jinja2.TemplateNotFound:
        return name


def _closure(env: jinja2.Environment, name: str) -> list[str]:
    """`name` and every template it includes/imports/extends, recursively, in a fixed order."""
    seen: list[str] = []
    edges: dict[str, list[str]] = {}
    todo = [name]
    while todo:
        n = todo.pop(0)
        if n in seen:
            continue
        seen.append(n)
        ast = env.parse(_source(env, n), n)
        edges[n] = []
        for ref in meta.find_referenced_templates(ast):
            if ref is None:
                raise TemplateLoadError(
                    f"{_where(env, n)}: includes a template by a computed name; "
                    "name included templates literally so they can be checked and hashed"
                )
            _compile(env, ref)
            edges[n].append(ref)
            todo.append(ref)
    _refuse_cycles(env, name, edges)
    return seen


def _refuse_cycles(env: jinja2.Environment, name: str, edges: dict[str, list[str]]) -> None:
    """A template that includes itself, directly or through others, would recurse until
    Python's stack runs out: name the chain instead."""

    def visit(n: str, path: list[str]) -> None:
        for ref in edges.get(n, []):
            if ref in path:
                chain = " -> ".join([*path[path.index(ref) :], ref])
                raise TemplateLoadError(f"{_where(env, ref)}: includes itself ({chain})")
            visit(ref, [*path, ref])

    visit(name, [name])


def _check_names(env: jinja2.Environment, name: str, sources: list[str], inputs: set[str]) -> None:
    """Every free variable of every template in the closure is an input or set locally.

    Names assigned anywhere in the closure count as known: included templates see the
    including template's loop variables and `set` names, and Jinja's own analysis
    reports a name set inside an `if` as free even where it is used in that branch.
    """
    local: set[str] = set()
    asts = {src: env.parse(_source(env, src), src) for src in sources}
    for ast in asts.values():
        for node in ast.find_all((nodes.Assign, nodes.For, nodes.AssignBlock, nodes.Macro)):
            target = node.name if isinstance(node, nodes.Macro) else node.target
            if isinstance(target, str):
                local.add(target)
            elif isinstance(target, nodes.Name):
                local.add(target.name)
            else:  # a tuple of names: {% for a, b in ... %}
                local.update(n.name for n in target.find_all(nodes.Name))
    for src, ast in asts.items():
        known = inputs | _JINJA_NAMES | local
        unknown = sorted(meta.find_undeclared_variables(ast) - known)
        if unknown:
            line = _first_line(ast, unknown[0])
            raise TemplateLoadError(
                f"{_where(env, src)}:{line}: unknown variable(s) {', '.join(unknown)}"
                + (f" (in a template {name} uses)" if src != name else "")
                + f"; the inputs are: {', '.join(sorted(inputs))}"
            )


def _refuse_unsafe(env: jinja2.Environment, name: str, sources: list[str]) -> None:
    """Refuse, naming file and line, an attribute the sandbox would refuse at render time:
    `x._y`, `x.__init__`, `x.append(...)`, `x|attr("_y")`, `x["__y__"]`."""
    for src in sources:
        text = _source(env, src)
        found = [(line, attr) for line, attr in _attributes(env.parse(text, src)) if _unsafe(attr)]
        if not found:
            continue
        first = min(line for line, _ in found)
        on_line = text.splitlines()[first - 1] if first <= len(text.splitlines()) else ""
        attrs = sorted({a for line, a in found if line == first}, key=on_line.find)
        raise TemplateLoadError(
            f"{_where(env, src)}:{first}: unsafe attribute {', '.join(map(repr, attrs))}: "
            "templates render in a sandbox that refuses Python internals (names starting "
            "with '_') and methods that change a value in place"
            + (f" (in a template {name} uses)" if src != name else "")
        )


def _attributes(ast: nodes.Template) -> Iterable[tuple[int, Any]]:
    """(line, name) of every attribute a template reads by a literal name."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            yield node.lineno, node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            # x["_y"] or x["pop"] may be a dict's own key (read before any attribute):
            # only a dunder name is surely an attempt at Python's internals.
            if str(node.arg.value).startswith("__"):
                yield node.lineno, node.arg.value
        elif (
            isinstance(node, nodes.Filter)
            and node.name == "attr"
            and node.args
            and isinstance(node.args[0], nodes.Const)
        ):
            yield node.lineno, node.args[0].value


def _unsafe(attr: Any) -> bool:
    return isinstance(attr, str) and (attr.startswith("_") or attr in _UNSAFE_ATTRIBUTES)


def _first_line(ast: nodes.Template, var: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == var and n.ctx == "load"]
    return min(lines) if lines else 1


def _try_render(
    env: jinja2.Environment, t: LoadedTemplate, sample: Mapping[str, Any], blocks: Collection[str]
) -> None:
    try:
        if blocks:
            for b in blocks:
                t.render_block(b, sample)
        else:
            t.render(sample)
    except TemplateLoadError:
        raise  # what the sandbox stopped: named with its file and line already
    except Exception as e:  # a template's own fault: 1/0, a bad filter argument, ...
        file, line = _template_frame(e, t.sources)
        where = f"{_where(env, file)}:{line}" if file else _where(env, t.name)
        raise TemplateLoadError(
            f"{where}: {type(e).__name__}: {e} (while rendering {t.name} on the sample "
            f"input {_short(sample)})"
        ) from None


def _template_frame(err: BaseException, sources: Sequence[str]) -> tuple[str | None, int]:
    """The innermost template file and line in a rendering traceback (Jinja rewrites
    tracebacks so template frames carry the template's own file name and line)."""
    found: tuple[str | None, int] = (None, 0)
    tb = err.__traceback__
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        for src in sources:
            if fname.endswith(src) or fname == src:
                found = (src, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _short(sample: Mapping[str, Any], limit: int = 400) -> str:
    text = json.dumps(sample, default=str, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SPACE = re.compile(r"[ \t]+\n")


def tidy(text: str) -> str:
    """Strip trailing spaces on lines and the text's ends (for multi-line outputs)."""
    return _SPACE.sub("\n", text).strip()
