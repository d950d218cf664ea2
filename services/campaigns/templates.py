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
"""

from __future__ import annotations

import functools
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


def choose(templates: list[Mapping[str, str]], tier: str, locale: str) -> Mapping[str, str] | None:
    """The most specific template for a tier and locale: exact beats ``*``, tier before locale."""
    def rank(template: Mapping[str, str]) -> tuple[int, int]:
        return (template["tier"] == tier, template["locale"] == locale)
    fitting = [template for template in templates
               if template["tier"] in (tier, ANY) and template["locale"] in (locale, ANY)]
    return max(fitting, key=rank) if fitting else None


__all__ = ["SecurityError", "check", "choose", "render"]
