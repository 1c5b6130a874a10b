"""Installing and uninstalling plugin wheels through the API (pip into a folder of the test's own)."""

import base64
import hashlib
import io
import sys
import zipfile

import pytest

pytestmark = pytest.mark.integration


def wheel(name, version, module_source, summary="A test plugin"):
    """Bytes of a minimal pure-Python wheel registering ``module`` in ``reactorkit.plugins``."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": module_source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
                            "Home-page: https://example.org/plugin\nAuthor: Test Author\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[reactorkit.plugins]\n{module} = {module}\n",
    }
    record = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            zf.writestr(path, data)
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue()


GOOD = "from reactorkit.core.hooks import hookimpl\n"
BROKEN = "raise ImportError('this plugin needs a driver that is not installed')\n"


@pytest.fixture
def site(leader_env, monkeypatch):
    target = leader_env.root / "site"
    target.mkdir()
    with open(leader_env.root / "config.ini", "a") as fh:
        fh.write(f"[plugins]\ninstall_target = {target}\n")
    from reactorkit.core.config import set_config

    set_config(None)
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setenv("PYTHONPATH", str(target))
    yield target
    for module in [m for m in sys.modules if m.startswith("rk_")]:
        del sys.modules[module]


def upload(client, filename, data):
    boundary = "rkboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    result = client.simulate_post("/api/system/upload", body=body,
                                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert result.status_code == 200, result.text
    return result.json["save_path"]


def run(client, accepted, run_tasks):
    assert accepted.status_code == 202, accepted.text
    run_tasks()
    return client.simulate_get(accepted.json["result_url_path"]).json


def test_install_list_and_uninstall_a_wheel(leader_client, site, run_tasks):
    path = upload(leader_client, *wheel("rk-good-plugin", "0.3.1", GOOD))
    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/install",
                                                            json={"args": ["rk-good-plugin"], "options": {"source": path}}),
                 run_tasks)
    assert result["status"] == "succeeded", result
    assert result["result"]["load_errors"] == []
    assert [p["version"] for p in result["result"]["plugins"]] == ["0.3.1"]

    listed = {p["name"]: p for p in leader_client.simulate_get("/unit_api/plugins/installed").json}
    plugin = listed["rk-good-plugin"]
    assert (plugin["version"], plugin["author"], plugin["homepage"], plugin["description"], plugin["source"]) == \
        ("0.3.1", "Test Author", "https://example.org/plugin", "A test plugin", "entry_points")
    assert plugin["errors"] == []

    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/uninstall",
                                                            json={"args": ["rk-good-plugin"]}), run_tasks)
    assert result["status"] == "succeeded", result
    assert "rk-good-plugin" not in {p["name"] for p in leader_client.simulate_get("/unit_api/plugins/installed").json}
    assert not list(site.glob("rk_good_plugin*"))


WITH_DEFAULTS = (
    "from reactorkit.plugin import ConfigSection, hookimpl\n"
    "@hookimpl\n"
    "def register_config_sections():\n"
    "    yield ConfigSection(section='ph_reading.config', values={'interval': '5', 'probe_offset': '0.0'})\n"
)


def test_installing_merges_the_plugins_default_config_without_overwriting(leader_env, leader_client, site, run_tasks):
    with open(leader_env.root / "config.ini", "a") as fh:
        fh.write("\n[ph_reading.config]\n# my probe\ninterval = 30\n")
    path = upload(leader_client, *wheel("rk-ph-defaults", "1.0.0", WITH_DEFAULTS))
    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/install",
                                                            json={"args": ["rk-ph-defaults"], "options": {"source": path}}),
                 run_tasks)
    assert result["status"] == "succeeded", result
    assert result["result"]["config_added"] == ["ph_reading.config.probe_offset"]
    from reactorkit.core.config import load_config

    config = load_config()
    assert config.get("ph_reading.config", "interval") == "30"  # the user's value stays
    assert config.get("ph_reading.config", "probe_offset") == "0.0"
    assert "# my probe" in (leader_env.root / "config.ini").read_text()


def test_a_plugin_that_breaks_on_import_is_reported_not_fatal(leader_client, site, run_tasks):
    path = upload(leader_client, *wheel("rk-broken-plugin", "1.0.0", BROKEN))
    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/install",
                                                            json={"args": ["rk-broken-plugin"], "options": {"source": path}}),
                 run_tasks)
    assert result["status"] == "succeeded", result
    assert any("needs a driver" in e for e in result["result"]["load_errors"])
    listed = {p["name"]: p for p in leader_client.simulate_get("/unit_api/plugins/installed").json}
    assert any("needs a driver" in e for e in listed["rk-broken-plugin"]["errors"])
    assert leader_client.simulate_get("/unit_api/health").status_code == 200


def test_a_failing_pip_install_is_a_failed_task_with_pips_reason(leader_client, site, tree_free_source, run_tasks):
    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/install",
                                                            json={"args": ["rk-x"], "options": {"source": tree_free_source}}),
                 run_tasks)
    assert result["status"] == "failed"
    assert "pip install failed" in result["error"]


@pytest.fixture
def tree_free_source(leader_env):
    path = leader_env.root / "uploads" / "not-a-wheel.whl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not a zip")
    return str(path)


def test_uninstalling_something_not_installed_fails_clearly(leader_client, site, run_tasks):
    result = run(leader_client, leader_client.simulate_post("/unit_api/plugins/uninstall", json={"args": ["rk-nothing"]}),
                 run_tasks)
    assert result["status"] == "failed"
    assert result["error"] == "Plugin 'rk-nothing' is not installed."
