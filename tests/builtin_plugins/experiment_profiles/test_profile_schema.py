"""Profile validation: every problem reported with its code, path, line and a hint."""

import textwrap

import pytest

from reactorkit.builtin_plugins.experiment_profiles.schema import parse_hours, validate

GOOD = textwrap.dedent("""\
    version: "1.0"
    experiment_profile_name: demo
    metadata:
      author: Ada
      description: stir, read, stop
    plugins:
      - {name: reactorkit, version: ">=0.0.1"}
    inputs:
      rpm: 500
    common:
      jobs:
        stirring:
          actions:
            - {type: start, t: 0, options: {target_rpm: "${{ rpm }}"}}
            - {type: update, t: 1h, options: {target_rpm: 600}}
            - type: repeat
              t: 1
              every: 30m
              max_time: 2h
              while: hours_elapsed() < 3
              actions:
                - {type: log, t: 0, options: {message: "rpm ${{ ::stirring:target_rpm }}"}}
            - {type: stop, hours_elapsed: 2}
    pioreactors:
      worker1:
        label: control
        jobs:
          od_reading:
            actions:
              - type: when
                t: 0
                wait_until: ::stirring:target_rpm > 100
                actions:
                  - {type: start, t: 5m}
""")


def codes(text, **kwargs):
    return [(d.code, d.line) for d in validate(text, **kwargs).diagnostics]


def test_a_good_profile_validates_into_a_typed_profile():
    result = validate(GOOD, known_jobs=["stirring", "od_reading"])
    assert result.diagnostics == []
    profile = result.profile
    assert profile.name == "demo"
    stirring = profile.common[0]
    assert [a.type for a in stirring.actions] == ["start", "update", "repeat", "stop"]
    assert stirring.actions[1].hours == 1.0
    assert stirring.actions[2].every_hours == 0.5 and stirring.actions[2].max_hours == 2.0
    assert profile.pioreactors[0].label == "control"
    assert profile.pioreactors[0].jobs[0].actions[0].actions[0].hours == pytest.approx(5 / 60)
    assert profile.action_count() == 7


@pytest.mark.parametrize("value, hours", [(1, 1.0), (0.5, 0.5), ("30s", 30 / 3600), ("2m", 2 / 60), ("1.5h", 1.5),
                                          ("2d", 48.0), ("3", 3.0)])
def test_times_are_hours_or_unit_strings(value, hours):
    assert parse_hours(value) == pytest.approx(hours)


@pytest.mark.parametrize("value", ["-1h", "soon", True, None, "1x"])
def test_bad_times_are_refused(value):
    with pytest.raises(ValueError):
        parse_hours(value)


def test_every_problem_is_reported_with_its_line():
    text = textwrap.dedent("""\
        version: 1.0
        experiment_profile_name: demo
        common:
          jobs:
            stirring:
              actions:
                - {type: start, t: 0, hours_elapsed: 0}
                - {type: stopp, t: 1}
                - {type: update, t: soon, options: {target_rpm: 3}}
                - {type: when, t: 0, actions: []}
                - {type: repeat, t: 0, actions: []}
                - {type: log, t: 0, options: {message: "x ${{ 1 + }}"}}
                - {type: start, t: 0, if: "unit() =="}
        extra: 1
    """)
    found = codes(text)
    assert ("version.invalid", 1) in found
    assert ("action.time.conflict", 7) in found
    assert ("action.type.unknown", 8) in found
    assert ("time.invalid", 9) in found
    assert ("when.condition.missing", 10) in found
    assert ("repeat.every.missing", 11) in found
    assert ("expression.syntax", 12) in found
    assert ("expression.syntax", 13) in found
    assert ("key.unknown", 14) in found
    result = validate(text)
    assert result.profile is None
    assert all(d.hint for d in result.diagnostics)


def test_hints_suggest_the_closest_name():
    text = 'version: "1.0"\nexperiment_profile_name: x\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - {type: stopp, t: 1}\n'
    diagnostic = validate(text).diagnostics[0]
    assert diagnostic.hint == "Did you mean 'stop'?"
    assert diagnostic.path == "common.jobs.stirring.actions[0].type"


def test_repeat_children_must_be_basic_and_within_the_period():
    text = textwrap.dedent("""\
        version: "1.0"
        experiment_profile_name: x
        common:
          jobs:
            stirring:
              actions:
                - type: repeat
                  t: 0
                  every: 10m
                  actions:
                    - {type: log, t: 20m, options: {message: hi}}
                    - {type: when, t: 0, wait_until: true, actions: []}
    """)
    assert ("repeat.action.offset", 11) in codes(text)
    assert ("repeat.action.type", 12) in codes(text)


def test_missing_required_keys_and_yaml_errors():
    assert ("key.missing", 1) in codes("experiment_profile_name: x\n")
    found = validate("version: '1.0'\n  bad: [\n")
    assert found.diagnostics[0].code == "yaml.syntax"
    assert found.diagnostics[0].line == 2


def test_unknown_jobs_are_warnings_not_errors():
    text = 'version: "1.0"\nexperiment_profile_name: x\ncommon:\n  jobs:\n    od_readin:\n      actions:\n        - {type: start, t: 0}\n'
    result = validate(text, known_jobs=["od_reading"])
    assert result.ok
    assert result.diagnostics[0].severity == "warning"
    assert result.diagnostics[0].hint == "Did you mean 'od_reading'?"


def test_plugin_versions_must_be_versions_or_constraints():
    text = 'version: "1.0"\nexperiment_profile_name: x\nplugins:\n  - {name: p, version: "not a version"}\n'
    assert ("plugin.version.invalid", 4) in codes(text)
