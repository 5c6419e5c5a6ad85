"""PURE: render sbatch scripts from ``{{NAME}}`` templates.

Only ``{{NAME}}`` (upper case letters, digits, ``_``) is a placeholder; shell syntax such as
``$VAR``, ``${VAR}`` and ``$(cmd)`` passes through untouched. Where a value lands decides how it
is written:

- ``#SBATCH`` directive lines: the value must not contain a newline; values with whitespace,
  ``"``, ``\\`` or ``#`` are wrapped in double quotes (sbatch's own directive quoting). A
  directive line in which any placeholder rendered empty is dropped, so optional directives
  (account, partition, qos, constraint, gpus) vanish when unset.
- other comment lines (``# ...``): the value is inserted as is (a newline is an error).
- command lines: the value is shell-quoted with :func:`shlex.quote`; a :class:`ShellCommand`
  value is written as one quoted word per argument. Placeholders inside quotes are rejected when
  the template is loaded (the quoting would be wrong there): write ``cd {{CODE_DIR}}``, not
  ``cd "{{CODE_DIR}}"``.
- a line holding only a placeholder whose value is :class:`Directives` expands to one
  ``#SBATCH <item>`` line per item (``{{EXTRA_DIRECTIVES}}``); one whose value is
  :class:`ShellLines` expands to those lines of shell code, written by the launcher itself
  (``{{LAUNCH}}``).

Example:
    >>> engine = SBATCHTemplateEngine("#SBATCH --job-name={{JOB_NAME}}\\necho {{MSG}} $HOME\\n")
    >>> sorted(engine.placeholders)
    ['JOB_NAME', 'MSG']
    >>> print(engine.render({"JOB_NAME": "a", "MSG": "hi; rm -rf /"}), end="")
    #SBATCH --job-name=a
    echo 'hi; rm -rf /' $HOME
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "DEFAULT_TEMPLATE_NAME",
    "Directives",
    "SBATCHTemplateEngine",
    "ShellCommand",
    "ShellLines",
    "TemplateError",
    "default_template_text",
    "sbatch_directives",
]

DEFAULT_TEMPLATE_NAME = "default.sbatch.sh"

_PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
# Anything that looks like an attempt at a placeholder but is not exactly ``{{NAME}}``.
_MALFORMED = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
_DIRECTIVE_PREFIX = "#SBATCH"
_NEEDS_DIRECTIVE_QUOTES = re.compile(r'[\s"\\#]')


class TemplateError(ValueError):
    """A template or a value given to it cannot be rendered safely."""


@dataclass(frozen=True)
class ShellCommand:
    """A command line given as separate arguments; rendered with :func:`shlex.join`.

    Args:
        words: the program and its arguments, e.g. ``("python", "train.py", "--config", p)``.
    """

    words: tuple[str, ...]

    def __init__(self, words: Sequence[object]) -> None:
        if isinstance(words, str):
            raise TypeError(
                f"ShellCommand expects a sequence of arguments, got the string {words!r}"
            )
        object.__setattr__(self, "words", tuple(str(word) for word in words))


@dataclass(frozen=True)
class Directives:
    """Extra ``#SBATCH`` options, one per item (``"--exclusive"``, ``"--mail-type=END"``).

    Args:
        items: options with or without a leading ``#SBATCH``; none may contain a newline.
    """

    items: tuple[str, ...]

    def __init__(self, items: Sequence[str]) -> None:
        if isinstance(items, str):
            raise TypeError(f"Directives expects a list of options, got the string {items!r}")
        cleaned = []
        for item in items:
            text = str(item).strip()
            if "\n" in text or "\r" in text:
                raise TemplateError(
                    f"extra directive {item!r} contains a newline; give one option per item"
                )
            if text.startswith(_DIRECTIVE_PREFIX):
                text = text[len(_DIRECTIVE_PREFIX) :].strip()
            if text:
                cleaned.append(text)
        object.__setattr__(self, "items", tuple(cleaned))


@dataclass(frozen=True)
class ShellLines:
    """Lines of shell code that the launcher composed itself (user values inside are already
    quoted), inserted as they are where a placeholder stands alone on its line.

    Args:
        lines: one line per item; none may contain a newline.
    """

    lines: tuple[str, ...]

    def __init__(self, lines: Sequence[str]) -> None:
        if isinstance(lines, str):
            raise TypeError(f"ShellLines expects a list of lines, got the string {lines!r}")
        for line in lines:
            if "\n" in line or "\r" in line:
                raise TemplateError(f"shell line {line!r} contains a newline; give one per item")
        object.__setattr__(self, "lines", tuple(lines))


def default_template_text() -> str:
    """Return the text of the built-in template ``launch/slurm/templates/default.sbatch.sh``.

    Returns:
        The template text.
    """
    files = (
        resources.files("model_training_framework.launch.slurm")
        / "templates"
        / DEFAULT_TEMPLATE_NAME
    )
    return files.read_text(encoding="utf-8")


def sbatch_directives(script: str) -> list[str]:
    """Return the ``#SBATCH`` options of a rendered script, in order, without the prefix.

    sbatch reads directives only up to the first command line, so scanning stops there too.

    Args:
        script: a rendered script.

    Returns:
        The option strings, e.g. ``["--job-name=a", "--requeue"]``.
    """
    directives = []
    for line in script.splitlines():
        stripped = line.strip()
        if line.startswith(_DIRECTIVE_PREFIX):
            directives.append(line[len(_DIRECTIVE_PREFIX) :].strip())
        elif stripped and not stripped.startswith("#"):
            break
    return directives


class SBATCHTemplateEngine:
    """Render an sbatch template with ``{{NAME}}`` placeholders.

    Args:
        template: a path to a template file, or the template text itself (text is recognised by
            containing a newline or ``{{``).
        name: what error messages call the template (default: its path, or ``<text>``).

    Every error names the template, the line and the placeholder:
    ``sbatch template my.sbatch.sh line 3: unknown placeholder {{TIMEE}}; known placeholders: ...``.

    Raises:
        FileNotFoundError: ``template`` looks like a path and does not exist.
        TemplateError: the template has malformed placeholders or placeholders inside quotes.
    """

    def __init__(self, template: str | Path, *, name: str | None = None) -> None:
        source, self.text = _load(template)
        self.source = name or source
        _check_malformed(self.text, self.source)
        self._lines = self.text.splitlines(keepends=True)
        self._kinds = _classify_lines(self._lines, self.source)

    @property
    def placeholders(self) -> set[str]:
        """Names of all placeholders used by the template."""
        return set(_PLACEHOLDER.findall(self.text))

    def render(self, context: Mapping[str, object]) -> str:
        """Substitute every placeholder from ``context``.

        Args:
            context: placeholder name -> value (str, int, float, Path, :class:`ShellCommand`,
                :class:`Directives`, :class:`ShellLines`); extra names are ignored.

        Returns:
            The rendered script.

        Raises:
            TemplateError: a placeholder has no value (the message lists the known names), or a
                value cannot be placed safely where it is used.
        """
        self._check_known(context)
        out = []
        for line_idx, (line, kind) in enumerate(zip(self._lines, self._kinds, strict=True)):
            rendered = _render_line(line, kind, context, _where(self.source, line_idx + 1))
            if rendered is not None:
                out.append(rendered)
        return "".join(out)

    def _check_known(self, context: Mapping[str, object]) -> None:
        unknown = [
            (line_no, match.group(0))
            for line_no, line in enumerate(self._lines, start=1)
            for match in _PLACEHOLDER.finditer(line)
            if match.group(1) not in context
        ]
        if not unknown:
            return
        line_no, first = unknown[0]
        others = list(dict.fromkeys(name for _, name in unknown[1:] if name != first))
        also = f" (also {', '.join(others)})" if others else ""
        raise TemplateError(
            f"{_where(self.source, line_no)}: unknown placeholder {first}{also}; known "
            f"placeholders: {', '.join(sorted(context))}"
        )


def _where(source: str, line_no: int) -> str:
    """How an error names its place: ``sbatch template my.sbatch.sh line 3``."""
    return f"sbatch template {source} line {line_no}"


def _load(template: str | Path) -> tuple[str, str]:
    if not isinstance(template, Path) and ("\n" in template or "{{" in template):
        return "<text>", template
    path = Path(template)
    if not path.is_file():
        raise FileNotFoundError(
            f"sbatch template {str(template)!r} is not a file; pass a path to an existing template or "
            "the template text itself"
        )
    return str(path), path.read_text(encoding="utf-8")


def _check_malformed(text: str, source: str) -> None:
    for match in _MALFORMED.finditer(text):
        if not _PLACEHOLDER.fullmatch(match.group(0)):
            line_no = text.count("\n", 0, match.start()) + 1
            raise TemplateError(
                f"{_where(source, line_no)}: {match.group(0)!r} is not a valid placeholder; "
                "write {{NAME}} with upper-case letters, digits and '_' and no spaces"
            )


# Line kinds
_DIRECTIVE, _COMMENT, _COMMAND, _ALONE = "directive", "comment", "command", "alone"


def _classify_lines(lines: list[str], source: str) -> list[str]:
    """Classify each line and reject placeholders inside shell quotes.

    Quote state is carried across lines so multi-line strings are handled; heredoc bodies are
    scanned like commands (a limitation: avoid placeholders in heredocs with unbalanced quotes).
    """
    kinds = []
    quote: str | None = None
    for line_no, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n")
        if quote is None and body.startswith(_DIRECTIVE_PREFIX):
            kinds.append(_DIRECTIVE)
        elif quote is None and body.lstrip().startswith("#"):
            kinds.append(_COMMENT)
        elif quote is None and _PLACEHOLDER.fullmatch(body.strip()):
            kinds.append(_ALONE)
        else:
            kinds.append(_COMMAND)
            quote = _scan_quotes(body, quote, source, line_no)
    return kinds


def _scan_quotes(body: str, quote: str | None, source: str, line_no: int) -> str | None:
    idx = 0
    while idx < len(body):
        char = body[idx]
        if quote is None and char == "#" and (idx == 0 or body[idx - 1].isspace()):
            return None  # rest of the line is a comment
        if body.startswith("{{", idx) and (match := _PLACEHOLDER.match(body, idx)):
            if quote is not None:
                raise TemplateError(
                    f"{_where(source, line_no)}: placeholder {match.group(0)} is inside "
                    f"{quote} quotes; remove the quotes, values are shell-quoted for you"
                )
            idx = match.end()
            continue
        if char == "\\" and quote != "'":
            idx += 2
            continue
        if quote is None and char in "'\"":
            quote = char
        elif quote == char:
            quote = None
        idx += 1
    return quote


def _render_line(line: str, kind: str, context: Mapping[str, object], where: str) -> str | None:
    if not _PLACEHOLDER.search(line):
        return line
    if kind == _ALONE:
        name = _PLACEHOLDER.search(line).group(1)  # type: ignore[union-attr]
        value = context[name]
        if isinstance(value, Directives):
            ending = "\n" if line.endswith("\n") else ""
            return "".join(f"{_DIRECTIVE_PREFIX} {item}\n" for item in value.items) or ending
        if isinstance(value, ShellLines):
            indent = line[: len(line) - len(line.lstrip())]
            return "".join(f"{indent}{text}\n" for text in value.lines)
        kind = _COMMAND
    is_empty = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal is_empty
        name = match.group(1)
        text = _format_value(name, context[name], kind, where)
        is_empty = is_empty or text == ""
        return text

    rendered = _PLACEHOLDER.sub(substitute, line)
    if kind == _DIRECTIVE and is_empty:
        return None
    return rendered


def _format_value(name: str, value: object, kind: str, where: str) -> str:
    if isinstance(value, ShellLines):
        raise TemplateError(
            f"{where}: {{{{{name}}}}} holds lines of shell code and must stand alone on its line"
        )
    if isinstance(value, Directives):
        raise TemplateError(
            f"{where}: {{{{{name}}}}} holds #SBATCH directives and must stand alone on its line"
        )
    if isinstance(value, ShellCommand):
        if kind != _COMMAND:
            raise TemplateError(
                f"{where}: {{{{{name}}}}} holds a command and can only be used on a command line"
            )
        return shlex.join(value.words)
    text = "" if value is None else str(value)
    if kind == _COMMAND:
        return shlex.quote(text) if text else "''"
    if "\n" in text or "\r" in text:
        raise TemplateError(
            f"{where}: value of {{{{{name}}}}} ({text!r}) contains a newline, which would "
            f"break the {kind} line; remove the newline from the value"
        )
    if kind == _DIRECTIVE and _NEEDS_DIRECTIVE_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
