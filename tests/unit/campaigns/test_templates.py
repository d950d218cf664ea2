"""Care templates: checked at creation, rendered in the sandbox, always with an opt-out."""

import pytest
from jinja2.sandbox import SecurityError

from services.campaigns import templates

VARIABLES = {"name": "张伟", "tier": "partner", "holiday": "春节", "date": "2027-02-06",
             "opt_out_url": "https://crm.example.com/care/opt-out?c=1"}


def test_a_template_with_the_known_variables_renders_with_an_opt_out():
    assert templates.check("{{ name }}，{{ holiday }}快乐！") == []
    text = templates.render("{{ name }}，{{ holiday }}快乐！", VARIABLES, "zh-CN")
    assert text == "张伟，春节快乐！\n退订请访问 https://crm.example.com/care/opt-out?c=1"
    assert templates.render("Hi {{ name|upper }} {{ opt_out_url }}", {**VARIABLES, "name": "li"}, "en-US") \
        == "Hi LI https://crm.example.com/care/opt-out?c=1"  # it names the link itself: not added twice


@pytest.mark.parametrize(("body", "complaint"), [
    ("{{ customer }}", "unknown variables customer"),
    ("{{ name.__class__ }}", "attributes or items"),
    ("{{ name['__class__'] }}", "attributes or items"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "attributes or items"),
    ("{{ name|attr('__class__') }}", "filters or tests attr"),
    ("{{ lipsum() }}", "call functions"),
    ("{% import 'x' as y %}", "call functions, macros or other templates"),
    ("{% if name %}", "syntax error"),
])
def test_templates_that_could_reach_outside_are_refused_when_checked(body, complaint):
    problems = templates.check(body)
    assert any(complaint in problem for problem in problems), problems


def test_the_sandbox_refuses_unsafe_attributes_even_if_a_check_were_skipped():
    with pytest.raises(SecurityError):
        templates.ENVIRONMENT.from_string("{{ name.__class__.__mro__ }}").render(name="x")  # attribute is unsafe
    with pytest.raises(SecurityError):
        templates.ENVIRONMENT.from_string("{{ name.__init__.__globals__ }}").render(name="x")


def test_the_most_specific_template_wins():
    candidates = [{"tier": "*", "locale": "*", "body": "any"}, {"tier": "partner", "locale": "*", "body": "partner"},
                  {"tier": "*", "locale": "en-US", "body": "english"},
                  {"tier": "partner", "locale": "en-US", "body": "english partner"}]
    assert templates.choose(candidates, "partner", "en-US")["body"] == "english partner"
    assert templates.choose(candidates, "partner", "zh-CN")["body"] == "partner"
    assert templates.choose(candidates, "general", "en-US")["body"] == "english"
    assert templates.choose(candidates, "general", "zh-CN")["body"] == "any"
    assert templates.choose(candidates[1:2], "general", "zh-CN") is None


SHARED = {key: VARIABLES[key] for key in ("tier", "holiday", "date")}


@pytest.mark.parametrize("body", [
    "{{ name }}，{{ holiday }}快乐！",  # opt-out line appended
    "Dear {{ name }} ({{ tier }}), {{ name }} again: {{ opt_out_url }} {{ '{x}' }} {% raw %}{{ name }}{% endraw %}",
    "{{ name|upper }} {{ opt_out_url }}",  # a filter sees the value: rendered per message
    "{% if name == 'x' %}x{% else %}{{ holiday }}{% endif %}",  # a condition on the value: per message
    "{{ name ~ '!' }}",
])
@pytest.mark.parametrize("name", ["张伟", "{name}", "{0} }{", "a\x00name\x00b", ""])
def test_a_form_fills_in_the_same_text_as_rendering_per_message(body, name):
    own = {"name": name, "opt_out_url": "https://crm.example.com/care/opt-out?c={1}"}
    form = templates.Form.of(body, SHARED, "zh-CN")
    assert form.fill(own) == templates.render(body, {**SHARED, **own}, "zh-CN")


def test_only_a_template_using_the_customers_variables_as_they_are_is_filled_by_substitution():
    assert templates.Form.of("{{ name }} {{ holiday|upper }}", SHARED, "en-US").pattern is not None
    assert templates.Form.of("{{ name|upper }}", SHARED, "en-US").pattern is None
    assert templates.Form.of("{{ opt_out_url|truncate(9) }} {{ name }}", SHARED, "en-US").pattern is None
