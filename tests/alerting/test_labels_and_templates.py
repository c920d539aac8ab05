"""Matchers, group keys and summary templates: the small languages operators write, validated whole."""

import pytest

from console.alerting import templating
from console.alerting.labels import LabelError, group_key, normalize_group_by, parse_matchers


def test_matchers_come_as_objects_strings_alertmanager_objects_or_a_mapping():
    assert [m.as_dict() for m in parse_matchers([
        {"name": "node_name", "op": "=~", "value": "gpu-.*"}, 'vendor!="huawei"', "index=3",
        {"name": "job_name", "value": "chat", "isRegex": True, "isEqual": False}])] == [
        {"name": "node_name", "op": "=~", "value": "gpu-.*"}, {"name": "vendor", "op": "!=", "value": "huawei"},
        {"name": "index", "op": "=", "value": "3"}, {"name": "job_name", "op": "!~", "value": "chat"}]
    assert [m.as_dict() for m in parse_matchers({"node": 5})] == [{"name": "node", "op": "=", "value": "5"}]


def test_regular_expressions_match_the_whole_value_and_a_missing_label_is_empty():
    (gpu,) = parse_matchers(['node_name=~"gpu-[0-9]"'])
    assert gpu.matches({"node_name": "gpu-1"}) and not gpu.matches({"node_name": "gpu-12"})
    (absent,) = parse_matchers(['mount=""'])
    assert absent.matches({}) and not absent.matches({"mount": "/"})


@pytest.mark.parametrize("raw, words", [
    (['node_name=~"(gpu"'], "not a valid regular expression"),
    ([{"name": "node-name", "value": "x"}], "not a label name"),
    ([{"name": "node", "op": "==", "value": "1"}], "operator"),
    ([{"name": "node", "value": ["1"]}], "must be a string"),
    ([{"name": "node", "value": "1", "regex": True}], "unknown keys"),
    (["just words"], "is not name=value"),
    ([42], "must be an object"),
    ("x" * 10, "not name=value"),
    ([{"name": "n", "op": "=~", "value": "a" * 600}], "longer than 500"),
    ([f"l{i}=x" for i in range(21)], "at most 20"),
])
def test_invalid_matchers_are_refused_with_a_reason(raw, words):
    with pytest.raises(LabelError) as error:
        parse_matchers(raw)
    assert words in str(error.value)


def test_group_by_accepts_rule_for_alertname_and_dots_for_every_label():
    assert normalize_group_by(["rule", "node", "node"]) == ["alertname", "node"]
    assert normalize_group_by("alertname, job") == ["alertname", "job"]
    assert normalize_group_by(["..."]) == ["..."]
    with pytest.raises(LabelError):
        normalize_group_by(["...", "node"])
    key, labels = group_key({"alertname": "A", "node": "3", "severity": "warning"}, ["alertname", "node"])
    assert key == '{}:{alertname="A", node="3"}' and labels == {"alertname": "A", "node": "3"}
    key, _ = group_key({"alertname": "A"}, ["alertname", "node"])
    assert key == '{}:{alertname="A"}'  # a label the alert lacks is left out, as in Alertmanager


def test_templates_render_labels_and_variables_in_prometheus_style_too():
    text = "{{ $labels.node_name }}/{{ labels.index }} at {{ value }} {{ unit }} (> {{ threshold }}){{ labels.gone }}"
    templating.validate(text)
    assert templating.render(text, {"node_name": "npu-1", "index": "3"},
                             {"value": 91.234, "unit": "°C", "threshold": 85.0}) == "npu-1/3 at 91.23 °C (> 85)"


@pytest.mark.parametrize("template, words", [
    ("{{ value", "unclosed"), ("value }}", "without an opening"), ("{{ }}", "empty"),
    ("{{ labels.node_name | upper }}", "unknown variable"), ("{{ __import__('os') }}", "unknown variable"),
    ("x" * 2001, "longer than"),
])
def test_invalid_templates_are_refused(template, words):
    with pytest.raises(templating.TemplateError) as error:
        templating.validate(template)
    assert words in str(error.value)


def test_a_template_naming_a_label_the_alerts_do_not_have_is_refused():
    with pytest.raises(templating.TemplateError, match="no label 'job_name'"):
        templating.validate("{{ labels.job_name }}", ("alertname", "node", "node_name"))


@pytest.mark.parametrize("value, text", [(3.0, "3"), (91.256, "91.26"), (0.5, "0.5"), (1234.56, "1234.6"),
                                         (None, ""), (-61.2, "-61.2")])
def test_values_print_without_float_noise(value, text):
    assert templating.format_value(value) == text
