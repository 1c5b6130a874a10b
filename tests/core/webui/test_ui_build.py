"""`pio ui install`: the UI build is taken from a `pioreactor` wheel, extracted under $DOT_PIOREACTOR/ui and recorded."""

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from reactorkit.core.testing import pio_command
from reactorkit.core.webui import build


def make_wheel(folder, version="9.9.9", files=None):
    """A wheel-shaped zip with a UI build under pioreactor/web/static/."""
    files = files if files is not None else {
        "index.html": "<!doctype html><div id=root></div>", "static/main-abc.js": "console.log(1)",
        "favicon.ico": "icon"}
    path = folder / f"pioreactor-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pioreactor/__init__.py", "")
        info = f"pioreactor-{version}.dist-info"
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: pioreactor\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
        for name, text in files.items():
            archive.writestr(f"pioreactor/web/static/{name}", text)
    return path


@pytest.fixture
def dot(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path / "dot"))
    return tmp_path / "dot"


def test_a_wheel_is_extracted_under_its_version_and_recorded(dot, tmp_path):
    lines = []
    target = build.install_ui(wheel=make_wheel(tmp_path), echo=lines.append)
    assert target == dot / "ui" / "9.9.9"
    assert (target / "static" / "main-abc.js").read_text() == "console.log(1)"
    record = json.loads((dot / "ui" / "installed.json").read_text())
    assert record["version"] == "9.9.9" and record["files"] == 3 and record["path"] == str(target)
    assert build.installed_ui() == target
    assert any("installed" in line for line in lines)


def test_a_wheel_without_a_build_is_refused_and_leaves_the_installed_one(dot, tmp_path):
    build.install_ui(wheel=make_wheel(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    empty = make_wheel(other, "1.0.0", files={"readme.txt": "no ui"})
    with pytest.raises(build.UiInstallError, match="no UI build"):
        build.install_ui(wheel=empty)
    assert build.installed_ui() == dot / "ui" / "9.9.9"
    assert not (dot / "ui" / "1.0.0").exists()


NESTED_BUILD = {"index.html": "<!doctype html>", "static/js/main-abc.js": "console.log(1)",
                "static/css/main.css": "body{}", "favicon.ico": "icon"}


def test_an_install_syncs_every_file_and_folder_before_the_rename_and_the_parent_after(dot, tmp_path, monkeypatch):
    synced = []  # (path synced, whether the build's final folder existed then)
    target = dot / "ui" / "9.9.9"
    real_fsync = os.fsync

    def counting_fsync(fd):
        synced.append((os.path.realpath(f"/proc/self/fd/{fd}"), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    assert build.install_ui(wheel=make_wheel(tmp_path, files=NESTED_BUILD)) == target

    before = {p for p, renamed in synced if not renamed}
    staging = {p for p in before if "/.install-" in p and "/build" in p}
    build_root = next(p for p in staging if p.endswith("/build"))
    relative = {os.path.relpath(p, build_root) for p in staging}
    installed = {os.path.relpath(os.path.join(d, n), target) for d, dirs, files in os.walk(target)
                 for n in dirs + files} | {"."}
    assert relative == installed  # every file and folder of the build, as extracted, before the rename
    after = [p for p, renamed in synced if renamed]
    record = next(i for i, p in enumerate(after) if "/.installed.json." in p)
    assert str(dot / "ui") in after[:record]  # the rename's folder, after it (before the record is written)


def test_an_install_interrupted_before_the_rename_leaves_the_previous_build(dot, tmp_path, monkeypatch):
    previous = build.install_ui(wheel=make_wheel(tmp_path))
    record = (dot / "ui" / "installed.json").read_text()
    again = tmp_path / "again"
    again.mkdir()
    for name in ("replace", "rename"):
        def interrupted(source, destination, _real=getattr(os, name)):
            if str(source).endswith("/build"):  # the new build's rename into place
                raise OSError("interrupted")
            _real(source, destination)

        monkeypatch.setattr(os, name, interrupted)
    with pytest.raises(OSError, match="interrupted"):  # the same version again, renamed in as the old one
        build.install_ui(wheel=make_wheel(again, files={**NESTED_BUILD, "index.html": "new"}))
    assert build.installed_ui() == previous
    assert (previous / "index.html").read_text() == "<!doctype html><div id=root></div>"
    assert (previous / "static" / "main-abc.js").read_text() == "console.log(1)"
    assert (dot / "ui" / "installed.json").read_text() == record
    assert sorted(p.name for p in (dot / "ui").iterdir()) == ["9.9.9", "installed.json"]


def test_a_reinstall_of_the_same_version_replaces_its_files(dot, tmp_path):
    build.install_ui(wheel=make_wheel(tmp_path))
    again = tmp_path / "again"
    again.mkdir()
    target = build.install_ui(wheel=make_wheel(again, files=NESTED_BUILD))
    assert not (target / "static" / "main-abc.js").exists()
    assert (target / "static" / "js" / "main-abc.js").read_text() == "console.log(1)"
    assert sorted(p.name for p in (dot / "ui").iterdir()) == ["9.9.9", "installed.json"]


# an install killed (SIGKILL, as by a power loss) as it renames its extracted build into place
KILLED_INSTALL = """
import os, signal, sys
from pathlib import Path
from reactorkit.core.webui import build

real_replace = os.replace
def replace(source, destination):
    if str(source).endswith("/build"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, destination)
os.replace = replace
build.install_ui(wheel=Path(sys.argv[1]))
"""

# an install that prints its temporary folder and waits for a line on stdin before extracting the build
HELD_INSTALL = """
import sys
from pathlib import Path
from reactorkit.core.webui import build

real_extract = build.extract_build
def extract(wheel, target):
    print(target.parent, flush=True)
    sys.stdin.readline()
    return real_extract(wheel, target)
build.extract_build = extract
build.install_ui(wheel=Path(sys.argv[1]))
print("installed", flush=True)
"""


def run_python(script, *args, dot, **kwargs):
    import sys

    env = {**os.environ, "DOT_PIOREACTOR": str(dot)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, text=True, **kwargs)


def killed_install(dot, wheel):
    proc = run_python(KILLED_INSTALL, wheel, dot=dot)
    assert proc.wait(120) == -9
    return [p for p in (dot / "ui").iterdir() if p.name.startswith(".install-")]


def test_the_next_install_removes_the_folder_a_killed_install_left(dot, tmp_path):
    [leftover] = killed_install(dot, make_wheel(tmp_path, files=NESTED_BUILD))
    assert (leftover / "build" / "index.html").is_file()  # a whole extracted build
    lines = []
    target = build.install_ui(wheel=make_wheel(tmp_path), echo=lines.append)
    assert sorted(p.name for p in (dot / "ui").iterdir()) == ["9.9.9", "installed.json"]
    assert build.installed_ui() == target
    assert any(leftover.name in line for line in lines)


def test_the_server_start_puts_back_the_build_an_install_killed_between_its_renames_had_moved_aside(
        dot, tmp_path, monkeypatch):
    target = build.install_ui(wheel=make_wheel(tmp_path))
    again = tmp_path / "again"
    again.mkdir()
    [leftover] = killed_install(dot, make_wheel(again, files={**NESTED_BUILD, "index.html": "new"}))
    assert not target.exists() and (leftover / "previous" / "index.html").is_file()  # the recorded build
    assert build.installed_ui() is None
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no download to fall back on
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "none"))
    assert build.ensure_ui(echo=lambda line: None) == target
    assert (target / "index.html").read_text() == "<!doctype html><div id=root></div>"
    assert (target / "static" / "main-abc.js").read_text() == "console.log(1)"
    assert sorted(p.name for p in (dot / "ui").iterdir()) == ["9.9.9", "installed.json"]


def test_the_folder_of_a_running_install_is_left_and_a_second_install_waits_for_it(dot, tmp_path):
    import threading

    build.install_ui(wheel=make_wheel(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    held = run_python(HELD_INSTALL, make_wheel(other, "2.0.0"), dot=dot, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE)
    try:
        in_use = Path(held.stdout.readline().strip())
        assert in_use.parent == dot / "ui" and in_use.name.startswith(".install-") and in_use.is_dir()
        assert build.remove_stale_installs() == []  # as at a server start while it runs
        assert in_use.is_dir()

        waiting, results = threading.Event(), []
        lines = []

        def echo(line):
            lines.append(line)
            if line.startswith("Another install"):
                waiting.set()

        second = threading.Thread(target=lambda: results.append(build.install_ui(wheel=make_wheel(tmp_path),
                                                                                  echo=echo)))
        second.start()
        assert waiting.wait(60)
        assert in_use.is_dir()
        held.stdin.write("\n")
        held.stdin.flush()
        assert held.stdout.readline().strip() == "installed"
        assert held.wait(60) == 0
        second.join(60)
        assert results == [dot / "ui" / "9.9.9"]
        assert not any("left by interrupted" in line for line in lines)  # nothing was a leftover
        assert sorted(p.name for p in (dot / "ui").iterdir()) == ["2.0.0", "9.9.9", "installed.json"]
    finally:
        held.kill()
        held.wait()


def test_leftovers_are_removed_without_following_links_out_of_the_ui_folder(dot, tmp_path):
    outside = tmp_path / "outside"
    (outside / "build").mkdir(parents=True)
    (outside / "build" / "index.html").write_text("not ours")
    (outside / "keep.txt").write_text("keep")
    ui = dot / "ui"
    leftover = ui / ".install-killed"
    (leftover / "build").mkdir(parents=True)
    (leftover / "build" / "index.html").write_text("partial")
    (leftover / "escape").symlink_to(outside)
    (leftover / "build" / "escape.txt").symlink_to(outside / "keep.txt")
    (ui / ".install-link").symlink_to(outside)  # not a folder an install made
    assert build.remove_stale_installs() == [".install-killed"]
    assert not os.path.lexists(leftover)
    assert (ui / ".install-link").is_symlink()
    assert (outside / "keep.txt").read_text() == "keep" and (outside / "build" / "index.html").read_text() == "not ours"


def test_nothing_is_removed_when_the_ui_folder_is_a_link(dot, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".install-killed").mkdir(parents=True)
    dot.mkdir()
    (dot / "ui").symlink_to(elsewhere)
    assert build.remove_stale_installs() == []
    assert (elsewhere / ".install-killed").is_dir()


def test_a_moved_aside_build_is_put_back_only_at_a_recorded_path_in_the_ui_folder(dot, tmp_path):
    outside = tmp_path / "outside"
    ui = dot / "ui"
    (ui / ".install-killed" / "previous").mkdir(parents=True)
    (ui / ".install-killed" / "previous" / "index.html").write_text("old build")
    (ui / "installed.json").write_text(json.dumps({"version": "9.9.9", "path": str(outside / "9.9.9")}))
    assert build.remove_stale_installs() == [".install-killed"]
    assert not outside.exists() and sorted(p.name for p in ui.iterdir()) == ["installed.json"]


def test_mounting_the_web_ui_removes_the_folders_killed_installs_left(dot, tmp_path):
    from types import SimpleNamespace

    from reactorkit.api import webui

    [leftover] = killed_install(dot, make_wheel(tmp_path))
    app = SimpleNamespace(context=SimpleNamespace(config=None), add_route=lambda *a: None, add_sink=lambda *a: None)
    webui.mount(app)
    assert not os.path.lexists(leftover)
    assert sorted(p.name for p in (dot / "ui").iterdir()) == []


def test_members_leading_outside_the_folder_are_refused(dot, tmp_path):
    bad = make_wheel(tmp_path, files={"index.html": "x", "../../escape.txt": "x"})
    with pytest.raises(build.UiInstallError, match="unsafe"):
        build.install_ui(wheel=bad)
    assert not (dot / "escape.txt").exists() and build.installed_ui() is None


def test_static_dir_in_the_config_overrides_the_installed_build(dot, tmp_path):
    from reactorkit.core.config import Config

    build.install_ui(wheel=make_wheel(tmp_path))
    own = tmp_path / "mybuild"
    own.mkdir()
    (own / "index.html").write_text("mine")
    config = Config()
    config.read_string(f"[ui]\nstatic_dir = {own}\n")
    assert build.static_dir(config) == own
    config.read_string("[ui]\nstatic_dir = \n")
    assert build.static_dir(config) == dot / "ui" / "9.9.9"


def pio(*args, env):
    return subprocess.run(pio_command(*args), env=env, capture_output=True, text=True, timeout=120)


def test_pio_ui_install_fetches_the_wheel_with_pip(tmp_path):
    """pip's own settings are honoured: here a local folder of wheels stands in for the package index."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "26.11.1")
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path / "dot"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    result = pio("ui", "install", env=env)
    assert result.returncode == 0, result.stderr
    assert "Fetching the Pioreactor web UI 26.11.1" in result.stdout
    assert (tmp_path / "dot" / "ui" / "26.11.1" / "index.html").exists()
    assert "version 26.11.1" in pio("ui", "status", env=env).stdout


def test_an_unreachable_index_is_reported(tmp_path):
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path / "dot"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(tmp_path)}
    result = pio("ui", "install", "--version", "26.11.1", env=env)
    assert result.returncode != 0
    assert "could not be reached" in result.stderr or "could not be downloaded" in result.stderr
    assert "No web UI" in pio("ui", "status", env=env).stdout


def test_ensure_ui_goes_on_without_a_build_when_the_index_is_unreachable(dot, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    lines = []
    assert build.ensure_ui(echo=lines.append) is None
    assert any("Going on without it" in line for line in lines)


def test_a_leaders_broker_config_has_a_tcp_and_a_websocket_listener():
    from reactorkit.core.localcluster.broker import mosquitto_config

    text = mosquitto_config()
    assert "listener 1883\nprotocol mqtt" in text and "listener 9001\nprotocol websockets" in text
    local = mosquitto_config(tcp_port=5000, ws_port=5001, bind_tcp="127.0.0.1", bind_ws="127.0.0.1")
    assert "listener 5000 127.0.0.1" in local and "listener 5001 127.0.0.1\nprotocol websockets" in local
    assert "\nset_tcp_nodelay true\n" in text  # a QoS 2 $state is not held for a subscriber's delayed ACK


def test_a_fresh_leaders_config_switches_every_registered_chart_on():
    import configparser

    from reactorkit.core.plugins import Registry
    from reactorkit.core.webui.defaults import ui_sections

    config = configparser.ConfigParser(interpolation=None)
    config.read_string(ui_sections())
    charts = dict(config["ui.overview.charts"])
    assert set(charts) == set(Registry.installed().charts) and set(charts.values()) == {"1"}
    assert config["ui.overview.cards"]["dosings"] == "1" and config["logging"]["ui_log_level"] == "INFO"
    # the UI's INI reader ends a section at a blank line
    assert "\n\n" not in ui_sections().split("[ui.overview.charts]")[1].split("[")[0].rstrip("\n")


def test_a_plugins_chart_is_switched_on_in_a_fresh_config(dot):
    from reactorkit.core.webui.defaults import ui_sections

    (dot / "plugins").mkdir(parents=True)
    (dot / "plugins" / "ph_chart.py").write_text(
        "from reactorkit.core.descriptors import ChartDescriptor\n"
        "from reactorkit.core.hooks import hookimpl\n\n"
        "@hookimpl\n"
        "def register_charts():\n"
        "    yield ChartDescriptor(chart_key='ph', data_source='ph_readings', title='pH', mqtt_topic='ph_reading/ph')\n")
    assert "\nph = 1\n" in ui_sections()
