"""Experiment-profile schema: validation with diagnostics, and the typed profile it yields (domain facts §7.1).

A profile is YAML::

    version: "1.0"
    experiment_profile_name: demo
    metadata: {author: Ada, description: stir then read}
    plugins: [{name: my-plugin, version: ">=0.2"}]
    inputs: {rpm: 500}
    common:
      jobs:
        stirring:
          actions:
            - {type: start, t: 0, options: {target_rpm: "${{ rpm }}"}}
            - {type: update, t: 1h, options: {target_rpm: 600}}
            - {type: stop, t: 2h}
    pioreactors:
      worker1: {label: control, jobs: {od_reading: {actions: [{type: start, t: 0}]}}}

:func:`validate` reports every problem it finds, each as a :class:`Diagnostic`
``{severity, code, message, path, line, hint}``; only when there is no error
does it return a :class:`Profile`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import expressions as ex
from .document import Path, YamlSyntaxError, format_path, line_of, load_with_lines

SCHEMA_VERSION = "1.0"
BASIC_ACTIONS = ("start", "stop", "pause", "resume", "update", "log")
ACTION_TYPES = BASIC_ACTIONS + ("repeat", "when")
#: same-time execution order (§7.2)
ACTION_ORDER = ("start", "stop", "pause", "resume", "update", "when", "repeat", "log")
LOG_LEVELS = ("debug", "info", "notice", "warning", "error")
TOP_KEYS = ("version", "experiment_profile_name", "metadata", "plugins", "inputs", "common", "pioreactors")
_COMMON_KEYS = ("version", "experiment_profile_name")
_TIME_KEYS = ("t", "hours_elapsed")
_ACTION_KEYS = {
    "start": ("options", "args", "config_overrides"),
    "stop": (),
    "pause": (),
    "resume": (),
    "update": ("options",),
    "log": ("options",),
    "repeat": ("every", "repeat_every_hours", "while", "max_time", "max_hours", "actions"),
    "when": ("wait_until", "condition", "actions"),
}
_UNITS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}
SNAKE = re.compile(r"[a-z][a-z0-9_]*\Z")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class Diagnostic:
    """One problem of a profile.

    Attributes:
        severity: ``"error"`` (the profile cannot run) or ``"warning"``.
        code: Stable key, e.g. ``"time.invalid"``, ``"expression.syntax"``.
        message: What is wrong, naming the offending value.
        path: Where, e.g. ``"common.jobs.stirring.actions[1].t"``.
        line: 1-based line in the YAML text (None when unknown).
        hint: How to fix it.
    """

    severity: str
    code: str
    message: str
    path: str
    line: int | None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"severity": self.severity, "code": self.code, "message": self.message, "path": self.path,
               "line": self.line}
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass(frozen=True)
class Action:
    """One action of a job, times in hours from its reference (profile start, repeat cycle, ``when`` trigger).

    ``condition`` is the ``if`` value; ``repeat`` uses ``every_hours``,
    ``while_``, ``max_hours`` and ``actions``; ``when`` uses ``wait_until`` and
    ``actions``.
    """

    type: str
    hours: float
    path: str
    condition: Any = True
    options: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    config_overrides: dict[str, Any] = field(default_factory=dict)
    every_hours: float | None = None
    while_: Any = True
    max_hours: float | None = None
    wait_until: Any = None
    actions: tuple["Action", ...] = ()

    @property
    def rank(self) -> int:
        """Position in the same-time order start, stop, pause, resume, update, when, repeat, log."""
        return ACTION_ORDER.index(self.type)


@dataclass(frozen=True)
class JobPlan:
    """A job of the profile and its actions."""

    job_name: str
    actions: tuple[Action, ...]
    description: str | None = None


@dataclass(frozen=True)
class UnitPlan:
    """The ``pioreactors.<unit>`` section: a label and jobs for that unit only."""

    unit: str
    label: str | None
    jobs: tuple[JobPlan, ...]


@dataclass(frozen=True)
class Profile:
    """A validated profile."""

    name: str
    version: str
    metadata: dict[str, Any]
    plugins: tuple[tuple[str, str], ...]
    inputs: dict[str, Any]
    common: tuple[JobPlan, ...]
    pioreactors: tuple[UnitPlan, ...]

    def action_count(self) -> int:
        """Actions written in the profile (children of repeat/when included)."""

        def count(actions: Iterable[Action]) -> int:
            return sum(1 + count(a.actions) for a in actions)

        jobs = list(self.common) + [j for u in self.pioreactors for j in u.jobs]
        return sum(count(j.actions) for j in jobs)

    def job_names(self) -> list[str]:
        return sorted({j.job_name for j in self.common} | {j.job_name for u in self.pioreactors for j in u.jobs})


@dataclass
class Validation:
    """Result of :func:`validate`: the profile (None on errors), every diagnostic, and the raw data."""

    profile: Profile | None
    diagnostics: list[Diagnostic]
    data: Any = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_hours(value: Any) -> float:
    """A time or duration as hours: a number is hours; a string ``30s``, ``2m``, ``1.5h``, ``2d`` or ``"1.5"`` (hours).

    Raises:
        ValueError: not a non-negative time (message shows the accepted forms).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        hours = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        factor = 1.0
        if text and text[-1] in _UNITS:
            factor, text = _UNITS[text[-1]], text[:-1].strip()
        try:
            hours = float(text) * factor
        except ValueError:
            raise ValueError(f"{value!r} is not a time") from None
    else:
        raise ValueError(f"{value!r} is not a time")
    if hours != hours or hours in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite time")
    if hours < 0:
        raise ValueError(f"{value!r} is negative")
    return hours


_TIME_HINT = "Write hours as a number (1.5) or a string with a unit: 30s, 2m, 1.5h, 2d."


class _Checker:
    def __init__(self, lines: dict[Path, int], known_jobs: set[str] | None) -> None:
        self.lines = lines
        self.known_jobs = known_jobs
        self.diagnostics: list[Diagnostic] = []

    def add(self, severity: str, code: str, message: str, path: Path, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(severity, code, message, format_path(path), line_of(self.lines, path), hint))

    def error(self, code: str, message: str, path: Path, hint: str | None = None) -> None:
        self.add("error", code, message, path, hint)

    def warning(self, code: str, message: str, path: Path, hint: str | None = None) -> None:
        self.add("warning", code, message, path, hint)

    # ------------------------------------------------------------------ helpers
    def mapping(self, value: Any, path: Path, what: str) -> dict[Any, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error("field.type", f"{what} must be a mapping, got {_kind(value)}.", path,
                       f"Write {format_path(path) or what} as 'key: value' lines.")
            return None
        return value

    def unknown_keys(self, value: dict[Any, Any], allowed: Iterable[str], path: Path, what: str) -> None:
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                near = _closest(str(key), allowed)
                hint = f"Did you mean {near!r}?" if near else f"Allowed keys: {', '.join(allowed) or 'none'}."
                self.error("key.unknown", f"Unknown key {key!r} in {what}.", path + (key,), hint)

    def expression(self, value: Any, path: Path, *, bare_allowed: bool) -> None:
        try:
            ex.check(value, bare_allowed=bare_allowed)
        except ex.ExpressionSyntaxError as exc:
            expected = f" Expected one of: {', '.join(exc.expected)}." if exc.expected else ""
            self.error("expression.syntax", f"Invalid expression: {exc}.", path,
                       "Expressions use numbers, true/false, names, + - * / **, comparisons, and/or/not, "
                       "functions like unit(), and live values unit:job:setting." + expected)

    def time(self, value: Any, path: Path, what: str = "time") -> float | None:
        try:
            return parse_hours(value)
        except ValueError as exc:
            self.error("time.invalid", f"Invalid {what}: {exc}.", path, _TIME_HINT)
            return None

    # ------------------------------------------------------------------ profile
    def profile(self, data: Any) -> Profile | None:
        if data is None:
            self.error("profile.empty", "The profile is empty.", (),
                       'Start with: version: "1.0" and experiment_profile_name: <name>.')
            return None
        if not isinstance(data, dict):
            self.error("profile.not_mapping", f"A profile must be a mapping, got {_kind(data)}.", (),
                       "Write the profile as 'key: value' lines (version, experiment_profile_name, common, …).")
            return None
        self.unknown_keys(data, TOP_KEYS, (), "the profile")
        for key in _COMMON_KEYS:
            if key not in data:
                hint = 'Add: version: "1.0"' if key == "version" else "Add: experiment_profile_name: <a short name>"
                self.error("key.missing", f"Missing required key {key!r}.", (), hint)
        version = data.get("version")
        if "version" in data and version != SCHEMA_VERSION:
            if isinstance(version, (int, float)) and not isinstance(version, bool) and str(version) == SCHEMA_VERSION:
                self.error("version.invalid", "version must be the string \"1.0\", got the number 1.0.", ("version",),
                           'Quote it: version: "1.0".')
            else:
                self.error("version.invalid", f"Unsupported version {version!r}.", ("version",),
                           'Use version: "1.0".')
        name = data.get("experiment_profile_name")
        if "experiment_profile_name" in data and (not isinstance(name, str) or not name.strip()):
            self.error("field.type", "experiment_profile_name must be a non-empty string.",
                       ("experiment_profile_name",), "Give the profile a short name.")
        metadata = self.metadata(data.get("metadata"))
        plugins = self.plugins(data.get("plugins"))
        inputs = self.inputs(data.get("inputs"))
        common = self.common(data.get("common"))
        units = self.units(data.get("pioreactors"))
        if not common and not units and not any(d.severity == "error" for d in self.diagnostics):
            self.warning("profile.no_actions", "The profile has no jobs.", (),
                         "Add jobs under common.jobs (all assigned units) or pioreactors.<unit>.jobs.")
        if any(d.severity == "error" for d in self.diagnostics):
            return None
        return Profile(name=str(name), version=str(version), metadata=metadata, plugins=tuple(plugins),
                       inputs=inputs, common=tuple(common), pioreactors=tuple(units))

    def metadata(self, value: Any) -> dict[str, Any]:
        path = ("metadata",)
        value = self.mapping(value, path, "metadata")
        if value is None:
            return {}
        self.unknown_keys(value, ("author", "description"), path, "metadata")
        for key in ("author", "description"):
            if value.get(key) is not None and not isinstance(value[key], str):
                self.error("field.type", f"metadata.{key} must be text, got {_kind(value[key])}.", path + (key,),
                           "Quote it if it looks like a number.")
        return {"author": value.get("author"), "description": value.get("description")}

    def plugins(self, value: Any) -> list[tuple[str, str]]:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        path = ("plugins",)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error("field.type", f"plugins must be a list, got {_kind(value)}.", path,
                       "Write: plugins: [{name: my-plugin, version: '>=1.0'}].")
            return []
        out = []
        for i, item in enumerate(value):
            item_path = path + (i,)
            item = self.mapping(item, item_path, f"plugins[{i}]")
            if item is None:
                continue
            self.unknown_keys(item, ("name", "version"), item_path, f"plugins[{i}]")
            name, version = item.get("name"), item.get("version")
            if not isinstance(name, str) or not name:
                self.error("key.missing", f"plugins[{i}] needs a name.", item_path, "Add name: <plugin package name>.")
                continue
            if version is None:
                self.error("key.missing", f"plugins[{i}] ({name}) needs a version.", item_path,
                           "Add version: '1.2.3' (exact) or a constraint such as '>=1.2'.")
                continue
            try:
                version_spec(str(version))
                SpecifierSet(version_spec(str(version)))
            except (InvalidSpecifier, ValueError):
                self.error("plugin.version.invalid", f"plugins[{i}] ({name}): {version!r} is not a version or "
                           "a version constraint.", item_path + ("version",), "Examples: '1.2.3', '>=1.2,<2'.")
                continue
            out.append((name, str(version)))
        return out

    def inputs(self, value: Any) -> dict[str, Any]:
        path = ("inputs",)
        value = self.mapping(value, path, "inputs")
        if value is None:
            return {}
        for key, item in value.items():
            if not isinstance(key, str) or not IDENTIFIER.fullmatch(key):
                self.error("input.name.invalid", f"Input name {key!r} is not a name.", path + (key,),
                           "Use letters, digits and _ (not starting with a digit).")
            elif key.lower() in ("and", "or", "not", "true", "false"):
                self.error("input.name.invalid", f"Input name {key!r} is a reserved word.", path + (key,),
                           "Choose another name.")
            if isinstance(item, (dict, list)):
                self.error("field.type", f"Input {key!r} must be a number, text or true/false.", path + (key,),
                           "Inputs are single values.")
        return dict(value)

    def common(self, value: Any) -> list[JobPlan]:
        path = ("common",)
        value = self.mapping(value, path, "common")
        if value is None:
            return []
        self.unknown_keys(value, ("jobs",), path, "common")
        return self.jobs(value.get("jobs"), path + ("jobs",))

    def units(self, value: Any) -> list[UnitPlan]:
        path = ("pioreactors",)
        value = self.mapping(value, path, "pioreactors")
        if value is None:
            return []
        out = []
        for unit, section in value.items():
            unit_path = path + (unit,)
            if not isinstance(unit, str) or not UNIT_NAME.fullmatch(unit):
                self.error("unit.name.invalid", f"{unit!r} is not a unit name.", unit_path,
                           "Use the unit's hostname, e.g. worker1.")
                continue
            section = self.mapping(section, unit_path, f"pioreactors.{unit}")
            if section is None:
                continue
            self.unknown_keys(section, ("label", "jobs"), unit_path, f"pioreactors.{unit}")
            label = section.get("label")
            if label is not None and not isinstance(label, str):
                self.error("field.type", f"pioreactors.{unit}.label must be text.", unit_path + ("label",),
                           "Quote it.")
                label = None
            out.append(UnitPlan(unit=unit, label=label, jobs=tuple(self.jobs(section.get("jobs"), unit_path + ("jobs",)))))
        return out

    def jobs(self, value: Any, path: Path) -> list[JobPlan]:
        value = self.mapping(value, path, format_path(path))
        if value is None:
            return []
        out = []
        for job_name, section in value.items():
            job_path = path + (job_name,)
            if not isinstance(job_name, str) or not SNAKE.fullmatch(job_name):
                self.error("job.name.invalid", f"{job_name!r} is not a job name.", job_path,
                           "Job names are lowercase with underscores, e.g. od_reading.")
                continue
            if self.known_jobs is not None and job_name not in self.known_jobs:
                near = _closest(job_name, sorted(self.known_jobs))
                self.warning("job.unknown", f"No installed plugin provides a job {job_name!r}.", job_path,
                             f"Did you mean {near!r}?" if near else "Install the plugin that provides it, or fix the name.")
            section = self.mapping(section, job_path, job_name)
            if section is None:
                continue
            self.unknown_keys(section, ("description", "actions"), job_path, f"job {job_name}")
            actions_value = section.get("actions")
            if actions_value is None:
                self.error("key.missing", f"Job {job_name!r} has no actions.", job_path,
                           "Add actions: [{type: start, t: 0}].")
                continue
            if not isinstance(actions_value, list):
                self.error("field.type", f"actions of {job_name!r} must be a list, got {_kind(actions_value)}.",
                           job_path + ("actions",), "Write each action as '- type: start' list items.")
                continue
            if not actions_value:
                self.warning("actions.empty", f"Job {job_name!r} has an empty action list.", job_path + ("actions",),
                             "Add actions or remove the job.")
            actions = self.actions(actions_value, job_path + ("actions",), allowed=ACTION_TYPES, limit=None)
            description = section.get("description")
            out.append(JobPlan(job_name=job_name, actions=tuple(actions),
                               description=description if isinstance(description, str) else None))
        return out

    def actions(self, value: list[Any], path: Path, *, allowed: tuple[str, ...], limit: float | None) -> list[Action]:
        out = []
        for i, item in enumerate(value):
            action = self.action(item, path + (i,), allowed=allowed, limit=limit)
            if action is not None:
                out.append(action)
        return out

    def action(self, item: Any, path: Path, *, allowed: tuple[str, ...], limit: float | None) -> Action | None:
        item = self.mapping(item, path, f"action {format_path(path)}")
        if item is None:
            return None
        kind = item.get("type")
        if kind is None:
            self.error("action.type.missing", "The action has no type.", path,
                       f"Add type: one of {', '.join(allowed)}.")
            return None
        if kind not in ACTION_TYPES:
            near = _closest(str(kind), ACTION_TYPES)
            self.error("action.type.unknown", f"Unknown action type {kind!r}.", path + ("type",),
                       f"Did you mean {near!r}?" if near else f"Use one of {', '.join(ACTION_TYPES)}.")
            return None
        if kind not in allowed:
            self.error("repeat.action.type", f"A {kind!r} action cannot be inside a repeat.", path + ("type",),
                       f"Inside repeat use only: {', '.join(allowed)}.")
            return None
        self.unknown_keys(item, ("type", "if") + _TIME_KEYS + _ACTION_KEYS[kind], path, f"a {kind} action")
        present = [k for k in _TIME_KEYS if k in item]
        hours: float | None = None
        if not present:
            self.error("time.missing", f"The {kind} action has no time.", path,
                       "Add t: <when, from the start>, e.g. t: 0 or t: 30m.")
        elif len(present) == 2:
            self.error("action.time.conflict", "Give either t or hours_elapsed, not both.", path + ("hours_elapsed",),
                       "Keep t (hours_elapsed is the legacy name).")
        else:
            hours = self.time(item[present[0]], path + (present[0],))
        if hours is not None and limit is not None and hours > limit:
            self.error("repeat.action.offset", f"Offset {item[present[0]]!r} is later than the repeat period "
                       f"({_fmt_hours(limit)}).", path + (present[0],),
                       "Offsets inside a repeat must be within one period (≤ every).")
        condition = item.get("if", True)
        if "if" in item:
            self.expression(condition, path + ("if",), bare_allowed=True)
        options = self.options(item, path, kind)
        args: tuple[str, ...] = ()
        overrides: dict[str, Any] = {}
        if kind == "start":
            args_value = item.get("args")
            if args_value is not None:
                if not isinstance(args_value, list) or any(isinstance(a, (dict, list)) for a in args_value):
                    self.error("field.type", "args must be a list of values.", path + ("args",),
                               "Example: args: [--flag, value].")
                else:
                    args = tuple(str(a) for a in args_value)
            overrides_value = self.mapping(item.get("config_overrides"), path + ("config_overrides",),
                                           "config_overrides")
            overrides = dict(overrides_value or {})
            for key, val in overrides.items():
                if isinstance(val, (dict, list)):
                    self.error("field.type", f"config_overrides.{key} must be a single value.",
                               path + ("config_overrides", key), "These set [<job>.config] keys for this run.")
        every = while_ = max_hours = wait_until = None
        children: list[Action] = []
        if kind == "repeat":
            every, max_hours = self.repeat_times(item, path)
            while_ = item.get("while", True)
            if "while" in item:
                self.expression(while_, path + ("while",), bare_allowed=True)
            children = self.child_actions(item, path, allowed=BASIC_ACTIONS, limit=every)
        elif kind == "when":
            keys = [k for k in ("wait_until", "condition") if k in item]
            if not keys:
                self.error("when.condition.missing", "The when action has no condition.", path,
                           "Add wait_until: <expression>, e.g. wait_until: worker1:od_reading:od1.od > 0.5.")
            elif len(keys) == 2:
                self.error("when.condition.conflict", "Give either wait_until or condition, not both.",
                           path + ("condition",), "Keep wait_until.")
            else:
                wait_until = item[keys[0]]
                if wait_until is None or (isinstance(wait_until, str) and not wait_until.strip()):
                    self.error("when.condition.missing", "The when condition is empty.", path + (keys[0],),
                               "Write an expression, e.g. hours_elapsed() > 2.")
                else:
                    self.expression(wait_until, path + (keys[0],), bare_allowed=True)
            children = self.child_actions(item, path, allowed=ACTION_TYPES, limit=None)
        return Action(type=kind, hours=hours or 0.0, path=format_path(path), condition=condition, options=options,
                      args=args, config_overrides=overrides, every_hours=every, while_=while_ if kind == "repeat" else True,
                      max_hours=max_hours, wait_until=wait_until, actions=tuple(children))

    def options(self, item: dict[Any, Any], path: Path, kind: str) -> dict[str, Any]:
        if "options" not in item:
            if kind == "update":
                self.error("update.options.missing", "The update action has no options.", path,
                           "Add options: {<setting>: <value>}, e.g. options: {target_rpm: 400}.")
            elif kind == "log":
                self.error("log.message.missing", "The log action has no message.", path,
                           "Add options: {message: <text>}.")
            return {}
        options = self.mapping(item["options"], path + ("options",), "options")
        if options is None:
            return {}
        for key, value in options.items():
            if not isinstance(key, str):
                self.error("field.type", f"Option name {key!r} must be text.", path + ("options", key))
            elif isinstance(value, (dict, list)):
                self.error("field.type", f"Option {key!r} must be a single value.", path + ("options", key),
                           "Use a number, text, true/false or ${{ expression }}.")
            elif isinstance(value, str) and ex.OPEN in value and kind != "log":
                if ex.is_wrapped(value):
                    self.expression(value, path + ("options", key), bare_allowed=False)
                else:
                    self.error("expression.syntax", f"Option {key!r} mixes text and ${{{{ }}}}.",
                               path + ("options", key), "Write the whole value as ${{ expression }}.")
        if kind == "update" and not options:
            self.error("update.options.missing", "The update action sets nothing.", path + ("options",),
                       "Add at least one setting, e.g. target_rpm: 400.")
        if kind == "log":
            self.unknown_keys(options, ("message", "level"), path + ("options",), "log options")
            message = options.get("message")
            if not isinstance(message, str) or not message:
                self.error("log.message.missing", "The log action has no message.", path + ("options",),
                           "Add message: <text> (it may embed ${{ expressions }}).")
            else:
                self.expression(message, path + ("options", "message"), bare_allowed=False)
            level = options.get("level", "notice")
            if not isinstance(level, str) or level.lower() not in LOG_LEVELS:
                self.error("log.level.invalid", f"Unknown log level {level!r}.", path + ("options", "level"),
                           f"Use one of {', '.join(LOG_LEVELS)}.")
        return dict(options)

    def repeat_times(self, item: dict[Any, Any], path: Path) -> tuple[float | None, float | None]:
        keys = [k for k in ("every", "repeat_every_hours") if k in item]
        every = None
        if not keys:
            self.error("repeat.every.missing", "The repeat action has no period.", path,
                       "Add every: <period>, e.g. every: 30m.")
        elif len(keys) == 2:
            self.error("repeat.every.conflict", "Give either every or repeat_every_hours, not both.",
                       path + ("repeat_every_hours",), "Keep every.")
        else:
            every = self.time(item[keys[0]], path + (keys[0],), "repeat period")
            if every is not None and every <= 0:
                self.error("repeat.every.invalid", "The repeat period must be positive.", path + (keys[0],),
                           "Use a period such as every: 30m.")
                every = None
        max_keys = [k for k in ("max_time", "max_hours") if k in item]
        max_hours = None
        if len(max_keys) == 2:
            self.error("repeat.max_time.conflict", "Give either max_time or max_hours, not both.",
                       path + ("max_hours",), "Keep max_time.")
        elif max_keys:
            max_hours = self.time(item[max_keys[0]], path + (max_keys[0],), "repeat limit")
        return every, max_hours

    def child_actions(self, item: dict[Any, Any], path: Path, *, allowed: tuple[str, ...],
                      limit: float | None) -> list[Action]:
        value = item.get("actions")
        if value is None:
            self.error("key.missing", f"The {item.get('type')} action has no actions.", path,
                       "Add actions: [...] to run.")
            return []
        if not isinstance(value, list):
            self.error("field.type", f"actions must be a list, got {_kind(value)}.", path + ("actions",),
                       "Write each action as a '- type: …' list item.")
            return []
        return self.actions(value, path + ("actions",), allowed=allowed, limit=limit)


def version_spec(version: str) -> str:
    """A plugin ``version`` as a PEP 440 specifier: ``1.2.3`` → ``==1.2.3``; constraints as given."""
    text = version.strip()
    if not text:
        raise ValueError("empty version")
    return text if text[0] in "<>=!~" else f"=={text}"


def _fmt_hours(hours: float) -> str:
    return f"{hours:g} h"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.7)
    return found[0] if found else None


def validate(text: str, *, known_jobs: Iterable[str] | None = None) -> Validation:
    """Check a profile's YAML text and report every problem with its line and a fix.

    Args:
        text: The YAML.
        known_jobs: Jobs installed on this cluster; others get a ``job.unknown`` warning.

    Returns:
        :class:`Validation` whose ``profile`` is None when there is any error.
    """
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        return Validation(None, [Diagnostic("error", "yaml.syntax", f"The text is not valid YAML: {exc}.", "",
                                            exc.line, "Check indentation and quoting around that line.")])
    checker = _Checker(lines, set(known_jobs) if known_jobs is not None else None)
    profile = checker.profile(data)
    diagnostics = sorted(checker.diagnostics, key=lambda d: (d.line or 0, d.severity != "error"))
    return Validation(profile, diagnostics, data)
