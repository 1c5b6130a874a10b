"""Configuration: shared ``config.ini`` merged with the unit's ``unit_config.ini``.

Order (later wins): built-in defaults (:data:`DEFAULTS`), ``$GLOBAL_CONFIG`` or
``$DOT_PIOREACTOR/config.ini``, ``$LOCAL_CONFIG`` or
``$DOT_PIOREACTOR/unit_config.ini``, the unit's broker credentials
(``storage/mqtt_credentials.ini``, when the broker has users), then one-run overrides
(``pio run --config-override SECTION KEY VALUE``). Keys are case-sensitive and
may have no value, as in the Pioreactor software.
"""

from __future__ import annotations

import configparser
import os
import socket
from pathlib import Path
from typing import Any, Iterable

from reactorkit.core.paths import dot_pioreactor

DEFAULTS = """
[cluster.topology]
leader_hostname = localhost
leader_address = 127.0.0.1

[cluster.addresses]

[ui]
proto = http
port = 4999

[mqtt]
broker_address = 127.0.0.1
broker_port = 1883
username =
password =
topic_prefix =

[redis]
url = redis://127.0.0.1:6379/0

[hardware]
backend = auto

[simulation]
speedup = 1.0
seed = 0
mu_max_per_hour = 0.6
monod_ks = 0.3
substrate_in = 2.0
initial_od = 0.05
initial_volume_ml = 14
ambient_temperature_c = 22.0
pump_ml_per_second = 0.5
noise_fraction = 0.01

[PWM]
1 = stirring
2 = media
3 = alt_media
4 = waste
5 = heating

[leds]
A = IR

[od_config.photodiode_channel]
1 = REF
2 = 90

[bioreactor]
initial_volume_ml = 14
efflux_tube_volume_ml = 14
max_volume_to_warn = 17
max_volume_to_stop = 18
initial_alt_media_fraction = 0

[storage]
database = storage/pioreactor.sqlite
temporary_cache = storage/local_intermittent_pioreactor_metadata.sqlite
persistent_cache = storage/local_persistent_pioreactor_metadata.sqlite

[logging]
log_file = logs/pioreactor.log
console_log_level = INFO
ui_log_level = INFO
"""


class Config(configparser.ConfigParser):
    """A case-sensitive, non-strict ConfigParser with path helpers.

    ``generation`` (int) grows with every change made through the parser's methods (``set``, ``read``,
    ``read_file``/``read_string``, ``read_dict``, sections and options added or removed, item assignment).
    """

    def __init__(self) -> None:
        #: Grows with every change made through the parser (``set``, ``read*``, sections added or removed), so
        #: a reader can keep what it derived from the settings until it grows (``/api/workers``' addresses).
        self.generation = 0
        super().__init__(strict=False, allow_no_value=True, interpolation=None)

    def set(self, section: str, option: str, value: str | None = None) -> None:
        self.generation += 1
        super().set(section, option, value)

    def add_section(self, section: str) -> None:
        self.generation += 1
        super().add_section(section)

    def remove_section(self, section: str) -> bool:
        self.generation += 1
        return super().remove_section(section)

    def remove_option(self, section: str, option: str) -> bool:
        self.generation += 1
        return super().remove_option(section, option)

    def read(self, filenames: Any, encoding: str | None = None) -> list[str]:
        self.generation += 1
        return super().read(filenames, encoding)

    def read_file(self, f: Any, source: str | None = None) -> None:  # read_string() comes here
        self.generation += 1
        super().read_file(f, source)

    def read_dict(self, dictionary: Any, source: str = "<dict>") -> None:
        self.generation += 1
        super().read_dict(dictionary, source)

    def optionxform(self, optionstr: str) -> str:  # keys are case-sensitive
        return optionstr

    def path(self, section: str, key: str) -> Path:
        """A path from the config, relative paths taken under ``$DOT_PIOREACTOR``."""
        value = Path(self.get(section, key))
        return value if value.is_absolute() else dot_pioreactor() / value

    def getboolean_loose(self, section: str, key: str, fallback: bool = False) -> bool:
        """Booleans as the Pioreactor reads them: 1/yes/true/on vs 0/no/false/off."""
        raw = self.get(section, key, fallback=None)
        if raw is None or raw == "":
            return fallback
        return raw.strip().lower() in ("1", "yes", "true", "on", "y", "t")


def shared_config_path() -> Path:
    return Path(os.environ.get("GLOBAL_CONFIG") or dot_pioreactor() / "config.ini")


def unit_config_path() -> Path:
    return Path(os.environ.get("LOCAL_CONFIG") or dot_pioreactor() / "unit_config.ini")


def load_config(overrides: Iterable[tuple[str, str, str]] = ()) -> Config:
    """Read defaults, shared and unit-specific files, then ``overrides``.

    Args:
        overrides: ``(section, key, value)`` triples applied last.

    Returns:
        A fresh :class:`Config`. Unreadable files raise
        ``configparser.Error`` naming the file and line.
    """
    config = Config()
    config.read_string(DEFAULTS, source="<defaults>")
    config.read(_config_files(), encoding="utf-8")
    for section, key, value in overrides:
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
    # empty photodiode entries are dropped, as in the Pioreactor software
    if config.has_section("od_config.photodiode_channel"):
        for key, value in list(config.items("od_config.photodiode_channel")):
            if not value:
                config.remove_option("od_config.photodiode_channel", key)
    return config


def _config_files() -> list[Path]:
    """The files :func:`load_config` reads, in order: shared, unit-specific, then the unit's own broker
    credentials (:mod:`reactorkit.core.auth.mqtt`)."""
    return [shared_config_path(), unit_config_path(), dot_pioreactor() / "storage" / "mqtt_credentials.ini"]


def _files_stamp(paths: list[str]) -> tuple[tuple[int, int, int, int] | None, ...]:
    """``(inode, device, mtime_ns, size)`` of each of ``paths`` (None: missing). A file saved with
    :func:`reactorkit.core.paths.atomic_write` (temp + rename) gets a new inode, whatever the mtime's grain."""
    out: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size))
    return tuple(out)


#: the config _cached_config() read, the files it read (as str: building the paths again costs ~13 us of a ~20 us
#: recheck) and their stamp (:func:`_files_stamp`) before reading; None: not read since the last set_config()
_loaded: tuple[Config, list[str], tuple[tuple[int, int, int, int] | None, ...]] | None = None


def _cached_config() -> Config:
    global _loaded
    loaded = _loaded
    if loaded is None:
        paths = [str(p) for p in _config_files()]
        stamp = _files_stamp(paths)  # before reading: a file replaced meanwhile is read again at the recheck
        # the config kept with its stamp, in one assignment: another thread's recheck that forgets the config while
        # it is being read (set_config) cannot leave it cached without the stamp that tells it is outdated
        loaded = _loaded = (load_config(), paths, stamp)
    return loaded[0]


def get_config() -> Config:
    """The process-wide config (read once). Use :func:`load_config` for a fresh read."""
    return _override if _override is not None else _cached_config()


def get_unit_name() -> str:
    """This unit's name: ``$HOSTNAME`` when set, else the machine's hostname."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def get_leader_hostname(config: Config | None = None) -> str:
    config = config or get_config()
    return config.get("cluster.topology", "leader_hostname", fallback="localhost")


def is_leader(config: Config | None = None) -> bool:
    """True when this unit's name is ``[cluster.topology] leader_hostname``."""
    return get_unit_name() == get_leader_hostname(config)


def pwm_channel_of(config: Config, device: str) -> int | None:
    """The ``[PWM]`` channel number driving ``device`` (e.g. ``"media"``), or None."""
    for channel, name in config.items("PWM") if config.has_section("PWM") else ():
        if name == device:
            return int(channel)
    return None


def led_channel_of(config: Config, device: str) -> str | None:
    """The ``[leds]`` channel (``"A"``–``"D"``) labelled ``device`` (e.g. ``"IR"``), or None."""
    for channel, name in config.items("leds") if config.has_section("leds") else ():
        if name == device:
            return channel
    return None


def set_config(config: Config | None) -> None:
    """Replace the process-wide config (``pio run --config-override`` and tests); None re-reads files."""
    global _override, _loaded
    _loaded = None
    _override = config


def forget_config_files() -> None:
    """After a config file was written: forget the cached config (``set_config(None)``) and the clock built
    from its ``[simulation]`` section (:func:`reactorkit.core.clock.forget_clock`), so that this process's
    next :func:`get_config` and ``get_clock()`` read the files again."""
    from reactorkit.core.clock import forget_clock

    set_config(None)
    forget_clock()


def recheck_config_files() -> bool:
    """For a long-running process whose config another process may save (the API's gunicorn workers: one of
    them handles ``PATCH …/config…``, the others only find the files replaced): when a file of
    :func:`_config_files` changed since the cached config was read, :func:`forget_config_files`.

    One ``stat`` per file (~5 us in all). Nothing happens while a config installed with :func:`set_config` is in use or
    before the files were read.

    Returns:
        True when the cached config (and clock) were forgotten.
    """
    loaded = _loaded
    if _override is not None or loaded is None or _files_stamp(loaded[1]) == loaded[2]:
        return False
    forget_config_files()
    return True


def current_config(config: Config | None = None) -> Config:
    """For a long-running loop of a process whose config another process may save (the task worker's outbox
    keeper and PWM watchdog): ``config`` when given, else this process's config once the files were rechecked
    (:func:`recheck_config_files`, one ``stat`` per file; the files are read again only when one changed).

    Raises:
        configparser.Error: a file read again does not parse (as :func:`load_config`).
    """
    if config is not None:
        return config
    recheck_config_files()
    return get_config()


_override: Config | None = None


def get_experiment(default: str = "$experiment") -> str:
    """The experiment of this process: ``$EXPERIMENT``, else the unit's cached
    assignment (``$DOT_PIOREACTOR/storage/assigned_experiment``), else ``default``."""
    env = os.environ.get("EXPERIMENT")
    if env:
        return env
    try:
        cached = (dot_pioreactor() / "storage" / "assigned_experiment").read_text().strip()
    except OSError:
        cached = ""
    return cached or default
