"""Hooks are called through pluggy's hook caller: tryfirst/trylast, wrappers, arguments, tracing, isolation."""

from __future__ import annotations

import logging

import pluggy

from reactorkit.core.descriptors import ChartDescriptor, JobDescriptor
from reactorkit.core.hooks import hookimpl, hookspec
from reactorkit.core.plugins import Registry, enable_hook_tracing, guard_hookimpls


def chart(key: str, title: str) -> ChartDescriptor:
    return ChartDescriptor(chart_key=key, data_source="t", title=title)


def plugin(name: str, title: str, **opts):
    def register_charts(self):
        yield chart("od", title)

    return type(name, (), {"register_charts": hookimpl(**opts)(register_charts)})()


def test_a_tryfirst_implementation_wins_a_key_conflict_and_a_trylast_one_loses(plugin_manager):
    plugin_manager.register(plugin("A", "from a, tryfirst", tryfirst=True), name="a")
    plugin_manager.register(plugin("B", "from b"), name="b")
    plugin_manager.register(plugin("Z", "from z, trylast", trylast=True), name="z")
    charts = Registry.from_plugins(plugin_manager).charts
    assert charts["od"].title == "from a, tryfirst"
    assert charts["od"].source == "a"


def test_without_priorities_the_later_plugin_in_name_order_wins(plugin_manager):
    plugin_manager.register(plugin("Z", "from z"), name="z")
    plugin_manager.register(plugin("B", "from b"), name="b")
    assert Registry.from_plugins(plugin_manager).charts["od"].title == "from z"


def test_a_wrapper_sees_every_contribution_and_may_change_the_result(plugin_manager):
    seen = []

    class Filter:
        @hookimpl(wrapper=True)
        def register_charts(self):
            contributions = yield
            seen.extend((c.plugin, [r.title for r in c]) for c in contributions)
            return [c for c in contributions if c.plugin != "b"]

    plugin_manager.register(plugin("A", "from a"), name="a")
    plugin_manager.register(plugin("B", "from b"), name="b")
    plugin_manager.register(Filter(), name="filter")
    charts = Registry.from_plugins(plugin_manager).charts
    assert sorted(seen) == [("a", ["from a"]), ("b", ["from b"])]
    assert charts["od"].title == "from a"


def test_a_failing_implementation_is_isolated_even_next_to_a_wrapper(plugin_manager):
    class Broken:
        @hookimpl
        def register_charts(self):
            yield chart("broken", "half")
            raise RuntimeError("chart file missing")

    class Counting:
        calls = 0

        @hookimpl(hookwrapper=True)
        def register_charts(self):
            Counting.calls += 1
            yield

    plugin_manager.register(plugin("A", "from a"), name="a")
    plugin_manager.register(Broken(), name="broken")
    plugin_manager.register(Counting(), name="counting")
    registry = Registry.from_plugins(plugin_manager)
    assert list(registry.charts) == ["od"]
    assert Counting.calls == 1
    assert [(f.plugin, f.stage) for f in registry.failures] == [("broken", "register_charts")]
    assert "chart file missing" in registry.failures[0].error


def test_a_raising_wrapper_loses_the_call_but_is_reported(plugin_manager):
    class BadWrapper:
        @hookimpl(wrapper=True)
        def register_charts(self):
            yield
            raise ValueError("wrapper bug")

    plugin_manager.register(plugin("A", "from a"), name="a")
    plugin_manager.register(BadWrapper(), name="bad")
    registry = Registry.from_plugins(plugin_manager)
    assert registry.charts == {}
    assert "wrapper bug" in registry.failures[0].error


def test_hook_arguments_reach_the_implementations_that_ask_for_them():
    class Specs:
        @hookspec
        def register_things(self, context):
            """A hook with an argument."""

    class Asks:
        @hookimpl
        def register_things(self, context):
            return [context["n"] * 2]

    class Ignores:
        @hookimpl
        def register_things(self):
            return [1]

    pm = pluggy.PluginManager("reactorkit")
    pm.add_hookspecs(Specs)
    pm.register(Asks(), name="asks")
    pm.register(Ignores(), name="ignores")
    guard_hookimpls(pm)
    results = pm.hook.register_things(context={"n": 21})
    assert sorted((c.plugin, list(c)) for c in results) == [("asks", [42]), ("ignores", [1])]


def test_tracing_logs_each_hook_call_and_its_implementations(plugin_manager, caplog):
    plugin_manager.register(plugin("A", "from a"), name="a")
    lines: list[str] = []
    undo = enable_hook_tracing(plugin_manager, write=lines.append)
    Registry.from_plugins(plugin_manager).charts
    undo()
    assert any("register_charts" in line for line in lines)
    lines.clear()
    Registry.from_plugins(plugin_manager).charts
    assert lines == []


def test_the_environment_switch_traces_to_the_plugins_trace_logger(monkeypatch, caplog):
    from reactorkit.core.plugins import make_plugin_manager

    monkeypatch.setenv("REACTORKIT_TRACE_HOOKS", "1")
    pm, _ = make_plugin_manager(load_installed=False)
    pm.register(type("J", (), {"register_jobs": hookimpl(lambda self: [
        JobDescriptor(job_name="traced", display_name="T", job_class="x:Y")])})(), name="j")
    with caplog.at_level(logging.INFO, logger="reactorkit.plugins.trace"):
        assert "traced" in Registry.from_plugins(pm).jobs
    assert "register_jobs" in caplog.text


def test_a_yields_hook_hands_over_its_records_honours_tryfirst_and_imports_a_named_function_only_when_called(
        plugin_manager, tmp_path, monkeypatch):
    import sys
    import types

    from reactorkit.core.hooks import yields

    (tmp_path / "rk_lazy_charts.py").write_text(
        "from reactorkit.core.descriptors import ChartDescriptor\n"
        "def charts():\n"
        "    return [ChartDescriptor(chart_key='lazy', data_source='t', title='imported when called')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first, second = types.ModuleType("first"), types.ModuleType("second")
    first.register_charts = yields(chart("od", "from first, tryfirst"), tryfirst=True)
    second.register_charts = yields(chart("od", "from second"), "rk_lazy_charts:charts")
    plugin_manager.register(first, name="first")
    plugin_manager.register(second, name="second")
    assert "rk_lazy_charts" not in sys.modules
    charts = Registry.from_plugins(plugin_manager).charts
    assert charts["od"].title == "from first, tryfirst"
    assert charts["lazy"].title == "imported when called"
    sys.modules.pop("rk_lazy_charts", None)


def test_yields_marks_its_implementations_once_the_markers_are_made_and_a_plugin_package_needs_no_pluggy():
    """A plugin package that only uses ``yields`` imports without pluggy; its implementations carry the same
    marking as ``hookimpl`` gives once the markers exist, and the plugin manager registers them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import reactorkit.builtin_plugins.stirring as stirring\n"
        "from reactorkit.core.hooks import yields\n"
        "before = yields('x', tryfirst=True)\n"
        "print('pluggy' in sys.modules, hasattr(stirring.register_jobs, 'reactorkit_impl'))\n"
        "from reactorkit.core.hooks import hookimpl\n"
        "def plain(): pass\n"
        "print(stirring.register_jobs.reactorkit_impl == hookimpl(plain).reactorkit_impl,"
        " before.reactorkit_impl['tryfirst'], yields('y').reactorkit_impl == plain.reactorkit_impl)\n"
        "from reactorkit.core.plugins import make_plugin_manager\n"
        "pm, _ = make_plugin_manager(load_installed=False)\n"
        "pm.register(stirring)\n"
        "print([job.job_name for batch in pm.hook.register_jobs() for job in batch])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "False False"  # neither pluggy nor a marker before the markers are used
    assert out[1] == "True True True"
    assert out[2] == "['stirring']"
