"""The profile expression language: parsing with lark, evaluation, templates."""

import random

import pytest

from reactorkit.builtin_plugins.experiment_profiles import expressions as ex


def ctx(**kwargs):
    values = {("worker-1", "od_reading", "od1"): '{"od": 0.7, "angle": "90"}',
              ("worker1", "stirring", "target_rpm"): "400.0",
              ("worker1", "stirring", "enable_dodging_od"): "True"}
    defaults = dict(inputs={"rpm": 500, "label": "ctl"}, unit="worker1", experiment="exp1", job_name="stirring",
                    hours_elapsed=lambda: 1.5, read_setting=lambda u, j, s: values.get((u, j, s)),
                    rng=random.Random(1))
    defaults.update(kwargs)
    return ex.Context(**defaults)


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("2 ** 3 ** 2", 512),
    ("-2 ** 2", -4),
    ("3 - -1", 4),
    ("7 / 2", 3.5),
    ("rpm * 2", 1000),
    ("1 < 2 and not false", True),
    ("1 > 2 or 2 >= 2", True),
    ("TRUE == true", True),
    ("label == ctl", True),
    ("undefined_name", "undefined_name"),
    ("unit() == worker1", True),
    ("experiment()", "exp1"),
    ("job_name()", "stirring"),
    ("hours_elapsed() > 1", True),
    ("worker-1:od_reading:od1.od > 0.5", True),
    ("worker-1:od_reading:od1.angle == 90", True),
    ("::stirring:target_rpm + 100", 500.0),
    ("worker1:stirring:enable_dodging_od and true", True),
    ("android", "android"),
])
def test_expressions_evaluate_like_the_profile_language(text, expected):
    assert ex.evaluate(text, ctx()) == expected


def test_random_is_in_unit_interval_and_uses_the_context_rng():
    values = [ex.evaluate("random()", ctx(rng=random.Random(7))) for _ in range(3)]
    assert all(0 <= v < 1 for v in values)
    assert values[0] == random.Random(7).random()


@pytest.mark.parametrize("text, column", [("1 +", 3), ("1 2", 3), ("a ! b", 3), ("(1", 2)])
def test_syntax_errors_name_the_column(text, column):
    with pytest.raises(ex.ExpressionSyntaxError) as info:
        ex.parse(text)
    assert info.value.column == column


@pytest.mark.parametrize("text, fragment", [
    ("worker9:od_reading:od1 > 1", "no value published"),
    ("worker-1:od_reading:od1.missing", "no key 'missing'"),
    ("1 / 0", "division by zero"),
    ("ctl + 1", "needs numbers"),
    ("nosuch()", "unknown function"),
])
def test_evaluation_errors_say_why(text, fragment):
    with pytest.raises(ex.ExpressionError, match=fragment):
        ex.evaluate(text, ctx())


def test_local_live_value_needs_a_unit():
    with pytest.raises(ex.ExpressionError, match="needs a unit"):
        ex.evaluate("::stirring:target_rpm", ctx(unit=None))


def test_option_values_are_evaluated_only_when_wholly_wrapped():
    c = ctx()
    assert ex.render_value("${{ rpm + 1 }}", c) == 501
    assert ex.render_value("rpm + 1", c) == "rpm + 1"
    assert ex.render_value(12, c) == 12


def test_conditions_may_be_bare_or_wrapped():
    c = ctx()
    assert ex.evaluate_condition("rpm > 100", c) is True
    assert ex.evaluate_condition("${{ rpm < 100 }}", c) is False
    assert ex.evaluate_condition(True, c) is True


def test_log_messages_embed_several_expressions():
    message = ex.render_message("OD ${{ worker-1:od_reading:od1.od }} on ${{unit()}} at ${{ hours_elapsed() }} h", ctx())
    assert message == "OD 0.7 on worker1 at 1.5 h"


def test_unclosed_template_is_a_syntax_error():
    with pytest.raises(ex.ExpressionSyntaxError):
        ex.check("OD ${{ 1 + 1", bare_allowed=False)
