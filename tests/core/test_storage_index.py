"""The storage index: the installed plugins' leader tables and topic mappings, without loading the plugins."""

from __future__ import annotations

import os

import pytest

from reactorkit.core import storage_index
from reactorkit.core.imports import resolve
from reactorkit.core.plugins import Registry

FILE_PLUGIN = (
    "from reactorkit.core.hooks import hookimpl\n"
    "from reactorkit.core.descriptors import TableDescriptor, TopicMapping\n"
    "__plugin_name__ = 'ph_store'\n"
    "@hookimpl\ndef register_storage():\n"
    "    yield TableDescriptor(table='ph_readings', create_sql='CREATE TABLE IF NOT EXISTS ph_readings (ph REAL)')\n"
    "    yield TopicMapping(topic='pioreactor/+/+/ph_reading/ph', table='ph_readings', parse={parse})\n"
    "def parse_ph(topic, payload):\n"
    "    return {{'ph': float(payload)}}\n"
)


@pytest.fixture
def unit_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return tmp_path


def _refuse_registry():
    raise AssertionError("the plugin registry was loaded")


def test_the_saved_records_are_the_registrys_and_are_read_without_loading_plugins(unit_root, monkeypatch):
    registry = Registry.installed()
    first = storage_index.installed_storage()  # builds and saves the index
    assert (unit_root / "storage" / storage_index.FILE_NAME).is_file()
    monkeypatch.setattr(storage_index, "_registry", _refuse_registry)
    saved = storage_index.installed_storage()
    assert isinstance(saved, storage_index.StorageRecords)
    for records in (first, saved):
        assert records.tables == registry.tables  # time series, migrations and sources included
        assert [(m.topic, m.table, m.source) for m in records.topic_mappings] == \
               [(m.topic, m.table, m.source) for m in registry.topic_mappings]
        assert [resolve(m.parse) for m in records.topic_mappings] == [resolve(m.parse) for m in registry.topic_mappings]


def test_rebuilding_the_cli_index_saves_the_records_too(unit_root, monkeypatch):
    from reactorkit.core.cli.index import get_index

    get_index()  # what any `pio` command does after a plugin change
    monkeypatch.setattr(storage_index, "_registry", _refuse_registry)
    assert storage_index.installed_storage().tables == Registry.installed().tables


def test_a_plugin_added_later_is_in_the_records(unit_root):
    before = storage_index.installed_storage()
    assert "ph_readings" not in before.tables
    (unit_root / "plugins").mkdir()
    plugin = unit_root / "plugins" / "ph_store.py"
    plugin.write_text(FILE_PLUGIN.format(parse="'json:loads'"))
    os.utime(plugin, ns=(plugin.stat().st_atime_ns, plugin.stat().st_mtime_ns + 10**9))
    after = storage_index.installed_storage()
    assert "ph_readings" in after.tables
    assert ("pioreactor/+/+/ph_reading/ph", "ph_readings") in [(m.topic, m.table) for m in after.topic_mappings]
    assert isinstance(storage_index.installed_storage(), storage_index.StorageRecords)  # a parser named by path: cached


def test_a_parser_without_an_import_path_is_never_cached(unit_root, monkeypatch):
    (unit_root / "plugins").mkdir()
    (unit_root / "plugins" / "ph_store.py").write_text(FILE_PLUGIN.format(parse="parse_ph"))
    for _ in range(2):  # every call loads the plugins: a file plugin's function cannot be imported by path
        records = storage_index.installed_storage()
        assert isinstance(records, Registry)
        mapping = next(m for m in records.topic_mappings if m.table == "ph_readings")
        assert mapping.parse("pioreactor/u/e/ph_reading/ph", b"7.25") == {"ph": 7.25}


FAILING_PLUGIN = (
    "import os\n"
    "from reactorkit.core.hooks import hookimpl\n"
    "from reactorkit.core.descriptors import TableDescriptor\n"
    "__plugin_name__ = 'od_store'\n"
    "@hookimpl\ndef register_storage():\n"
    "    if not os.path.exists(os.path.join(os.environ['DOT_PIOREACTOR'], 'od_store_ready')):\n"
    "        raise RuntimeError('its settings are not there yet')\n"
    "    return [TableDescriptor(table='od_store_readings', create_sql='CREATE TABLE IF NOT EXISTS od_store_readings (od REAL)')]\n"
)


def test_records_of_a_plugin_that_failed_are_never_cached(unit_root):
    (unit_root / "plugins").mkdir()
    (unit_root / "plugins" / "od_store.py").write_text(FAILING_PLUGIN)
    failed = storage_index.installed_storage()
    assert "od_store_readings" not in failed.tables
    assert any(f.plugin == "od_store" for f in failed.failures)  # logged at every start, as before the index
    (unit_root / "od_store_ready").write_text("")  # the failure passes without any plugin file changing
    assert "od_store_readings" in storage_index.installed_storage().tables
    assert isinstance(storage_index.installed_storage(), storage_index.StorageRecords)  # cached once it loads


@pytest.mark.parametrize("damage", ["", "half", "null", "[]", '{"version": 1}', "foreign"])
def test_a_missing_half_written_or_foreign_index_is_rebuilt_from_the_registry(unit_root, damage):
    storage_index.installed_storage()
    path = unit_root / "storage" / storage_index.FILE_NAME
    saved = path.read_text()
    damaged = {"half": saved[: len(saved) // 2],
               "foreign": saved.replace('"tables": [', '"tables": [{"table": "x", "unknown_field": 1}, ', 1)}
    path.write_text(damaged.get(damage, damage))
    records = storage_index.installed_storage()
    assert records.tables == Registry.installed().tables
    assert path.read_text() == saved  # saved again, whole
    path.unlink()
    assert storage_index.installed_storage().tables == Registry.installed().tables
    assert path.is_file()


ENTRY_POINT_PLUGIN = (
    "from reactorkit.core.hooks import hookimpl\n"
    "from reactorkit.core.descriptors import TableDescriptor, TopicMapping\n"
    "@hookimpl\ndef register_storage():\n"
    "    yield TableDescriptor(table='orp_readings', create_sql='CREATE TABLE IF NOT EXISTS orp_readings (orp REAL)')\n"
    "    yield TopicMapping(topic='pioreactor/+/+/orp_reading/orp', table='orp_readings', parse='json:loads')\n"
)


def test_a_plugin_installed_into_the_install_target_is_in_the_records_after_the_plugin_change(unit_root, tmp_path,
                                                                                               monkeypatch):
    import importlib
    import sys

    from reactorkit.core import reloads

    target = tmp_path / "target"  # [plugins] install_target: on the path, but not a site-packages folder
    target.mkdir()
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setattr(reloads, "announce_plugins_changed", lambda config=None: False)  # no broker here
    from reactorkit.core.cli.index import get_index

    get_index()  # saved by any `pio` command before the install
    assert "orp_readings" not in storage_index.installed_storage().tables
    (target / "orp_store.py").write_text(ENTRY_POINT_PLUGIN)  # what `pip install --target` leaves
    info = target / "orp_store-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: orp-store\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[reactorkit.plugins]\norp_store = orp_store\n")
    importlib.invalidate_caches()
    try:
        reloads.after_plugin_change()  # what `pio plugins install` and the API's install task call
        records = storage_index.installed_storage()  # the ingestion's next start
        assert "orp_readings" in records.tables
        assert ("pioreactor/+/+/orp_reading/orp", "orp_readings") in [(m.topic, m.table) for m in records.topic_mappings]
    finally:
        sys.modules.pop("orp_store", None)
