"""Care message templates: Jinja2 in its immutable sandbox, checked when a campaign is created.

A template may only use the variables of ``TEMPLATE_VARIABLES`` (name,
tier, holiday, date, opt_out_url), plain text and a few text
filters (``SAFE_FILTERS``). ``check`` refuses a template that does not parse, that names any
other variable, or that reaches for an attribute or item at all (the
sandbox would refuse ``__class__`` at render time; refusing every
attribute access at creation keeps the surprise away from send time).
Rendering runs in the sandbox too, so nothing a template says runs code.
A body that does not mention ``opt_out_url`` gets the opt-out line
appended: every message carries one.

A run renders a template once per tier and locale (``Form``), with
markers in place of the two variables that differ per customer, and
fills each message in by substitution: the same text as rendering per
message, at a fraction of the cost. A template that filters or tests a
per-customer variable is rendered per message instead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from contracts.campaigns import ANY, TEMPLATE_VARIABLES

SAFE_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "default", "truncate", "replace",
                          "escape", "e"})
OPT_OUT_LINES = {"zh": "退订请访问 {url}", "en": "To stop these messages: {url}"}

ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def check(body: str) -> list[str]:
    """What is wrong with a template body (empty if nothing)."""
    try:
        tree = ENVIRONMENT.parse(body)
    except TemplateSyntaxError as error:
        return [f"template syntax error on line {error.lineno}: {error.message}"]
    problems = []
    unknown = sorted({node.name for node in tree.find_all(nodes.Name)
                      if node.ctx == "load" and node.name not in TEMPLATE_VARIABLES})
    if unknown:
        problems.append(f"unknown variables {', '.join(unknown)}: use only {', '.join(TEMPLATE_VARIABLES)}")
    if any(True for _ in tree.find_all((nodes.Getattr, nodes.Getitem))):
        problems.append("templates may not read attributes or items: use the variables as they are")
    if any(True for _ in tree.find_all((nodes.Call, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends,
                                        nodes.Macro, nodes.CallBlock))):
        problems.append("templates may not call functions, macros or other templates")
    filters = sorted({node.name for node in tree.find_all((nodes.Filter, nodes.Test))} - SAFE_FILTERS)
    if filters:
        problems.append(f"filters or tests {', '.join(filters)} are not allowed: use {', '.join(sorted(SAFE_FILTERS))}")
    return problems


@functools.lru_cache(maxsize=512)
def _compiled(body: str):
    return ENVIRONMENT.from_string(body)


def render(body: str, variables: Mapping[str, Any], locale: str) -> str:
    """The message text; ``SecurityError`` never leaves the sandbox as code run."""
    text = _compiled(body).render(**variables)
    if "opt_out_url" not in body:
        line = OPT_OUT_LINES.get(locale.split("-")[0], OPT_OUT_LINES["en"])
        text = f"{text}\n{line.format(url=variables['opt_out_url'])}"
    return text


PER_MESSAGE = ("name", "opt_out_url")  # the variables that differ from one customer to the next
_MARKERS = {variable: f"\x00{variable}\x00" for variable in PER_MESSAGE}
_MARKED = re.compile("\x00(" + "|".join(PER_MESSAGE) + ")\x00")


@dataclass(frozen=True)
class Form:
    """A template rendered for what a tier and locale share; ``fill`` adds a customer's own variables.

    ``pattern`` is the rendered text as a ``str.format`` pattern with the
    per-message variables as its only fields, or ``None`` when the template
    has to be rendered per message (see ``_filled_by_substitution``).
    """

    body: str
    shared: Mapping[str, Any]
    locale: str
    pattern: str | None

    @classmethod
    def of(cls, body: str, shared: Mapping[str, Any], locale: str) -> "Form":
        if not _filled_by_substitution(body):
            return cls(body, shared, locale, None)
        marked = render(body, {**shared, **_MARKERS}, locale)
        literals = _MARKED.split(marked)  # literal text and variable names, alternately
        pattern = "".join(part.replace("{", "{{").replace("}", "}}") if index % 2 == 0 else "{" + part + "}"
                          for index, part in enumerate(literals))
        return cls(body, shared, locale, pattern)

    def fill(self, own: Mapping[str, str]) -> str:
        """The message text for a customer's ``name`` and ``opt_out_url``."""
        if self.pattern is None:
            return render(self.body, {**self.shared, **own}, self.locale)
        return self.pattern.format_map(own)


@functools.lru_cache(maxsize=512)
def _filled_by_substitution(body: str) -> bool:
    """Whether the per-message variables only ever stand alone as ``{{ name }}``.

    Then the rendered text holds each value as it is, and a marker can stand
    in for it; a filter (``{{ name|upper }}``) or a condition would see the
    marker instead of the value. A body holding the marker's own character
    is rendered per message too.
    """
    tree = ENVIRONMENT.parse(body)
    uses = sum(1 for node in tree.find_all(nodes.Name) if node.name in PER_MESSAGE)
    alone = sum(1 for output in tree.find_all(nodes.Output) for node in output.nodes
                if isinstance(node, nodes.Name) and node.name in PER_MESSAGE)
    return uses == alone and "\x00" not in body


def choose(templates: list[Mapping[str, str]], tier: str, locale: str) -> Mapping[str, str] | None:
    """The most specific template for a tier and locale: exact beats ``*``, tier before locale."""
    def rank(template: Mapping[str, str]) -> tuple[int, int]:
        return (template["tier"] == tier, template["locale"] == locale)
    fitting = [template for template in templates
               if template["tier"] in (tier, ANY) and template["locale"] in (locale, ANY)]
    return max(fitting, key=rank) if fitting else None


__all__ = ["Form", "SecurityError", "check", "choose", "render"]
