"""Records (:mod:`reactorkit.core.records`), the base of the descriptors: frozen keyword-only classes that behave
as ``@dataclass(frozen=True, kw_only=True)`` ones, and that the :mod:`dataclasses` functions take, without
generating methods when they are defined (importing the descriptors imports no ``dataclasses``)."""

import dataclasses
import inspect
import pickle
import subprocess
import sys

import pytest

from reactorkit.core.descriptors import ChartDescriptor, DatasetDescriptor, JobDescriptor, PublishedSetting
from reactorkit.core.records import Record, asdict, field, replace


class Pump(Record):
    """A record of the tests."""

    name: str
    ml: float = 1.0
    channels: dict = field(default_factory=dict)
    secret: str = field(default="", repr=False)
    required_last: int = field(repr=False)


def test_a_record_is_built_by_keyword_with_defaults_and_factories():
    a = Pump(name="media", required_last=3)
    b = Pump(name="media", required_last=3)
    assert (a.name, a.ml, a.channels, a.secret, a.required_last) == ("media", 1.0, {}, "", 3)
    assert a.channels is not b.channels  # one per record
    assert repr(a) == "Pump(name='media', ml=1.0, channels={})"
    assert a == b and a != Pump(name="media", ml=2.0, required_last=3) and a != ("media",)


def test_a_record_refuses_what_a_keyword_only_dataclass_refuses():
    with pytest.raises(TypeError, match="missing 2 required keyword-only arguments: 'name' and 'required_last'"):
        Pump()
    with pytest.raises(TypeError, match="unexpected keyword argument 'volume'"):
        Pump(name="media", required_last=1, volume=2)
    with pytest.raises(TypeError):
        Pump("media")
    with pytest.raises(ValueError, match="default_factory"):
        type("Bad", (Record,), {"__annotations__": {"x": "list"}, "x": []})


def test_a_record_is_frozen():
    setting = PublishedSetting(key="target_rpm", unit="RPM")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setting.unit = "Hz"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del setting.unit
    assert hash(setting) == hash(PublishedSetting(key="target_rpm", unit="RPM"))


def test_the_dataclasses_functions_take_a_record():
    job = JobDescriptor(job_name="ph_reading", display_name="pH", job_class="x:Y",
                        published_settings=(PublishedSetting(key="ph"),))
    assert dataclasses.is_dataclass(job) and dataclasses.is_dataclass(JobDescriptor)
    names = [f.name for f in dataclasses.fields(job)]
    assert names[:3] == ["job_name", "display_name", "description"] and names[-1] == "source"
    assert [f.name for f in dataclasses.fields(job) if not f.repr][0] == "job_class"
    moved = dataclasses.replace(job, source="my_plugin")
    assert moved.source == "my_plugin" and moved.job_name == "ph_reading" and moved == replace(job, source="my_plugin")
    assert dataclasses.asdict(job)["published_settings"][0]["key"] == "ph"
    with pytest.raises(ValueError, match="snake_case"):  # __post_init__ runs again
        replace(job, job_name="pH reading")
    with pytest.raises(TypeError, match="no field 'colour'"):
        replace(job, colour="red")
    assert list(inspect.signature(ChartDescriptor).parameters)[:3] == ["chart_key", "data_source", "title"]
    assert pickle.loads(pickle.dumps(job)) == job


def test_a_dataclass_may_derive_from_a_record():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Exported(DatasetDescriptor):
        rows: int = 0

    record = Exported(dataset_name="ph", display_name="pH", table="ph_readings", rows=3)
    assert record.rows == 3 and record.column_units == {} and record.to_dict()["rows"] == 3
    assert [f.name for f in dataclasses.fields(record)][-1] == "rows"


def test_importing_the_descriptors_and_a_plugins_records_imports_no_dataclasses():
    code = ("import sys\nimport reactorkit.builtin_plugins.stirring.descriptors as d\n"
            "print(d.STIRRING.job_name, 'dataclasses' in sys.modules, 'inspect' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["stirring", "False", "False"]


class State(Record, frozen=False, kw_only=False):
    """A mutable record taking its fields by position too, as a plain ``@dataclass``."""

    t: float
    od: float = 0.05
    pwm: dict = field(default_factory=dict)


def test_a_mutable_positional_record_behaves_as_a_plain_dataclass():
    state = State(1.0, 0.2)
    state.od = 0.3
    assert state == State(t=1.0, od=0.3) and State.__match_args__ == ("t", "od", "pwm")
    with pytest.raises(TypeError):
        hash(state)  # eq without frozen: not hashable
    with pytest.raises(TypeError, match="multiple values for argument 't'"):
        State(1.0, t=2.0)
    with pytest.raises(TypeError, match="takes 4 positional arguments but 5 were given"):
        State(1.0, 0.1, {}, 3)
    with pytest.raises(TypeError, match="cannot inherit frozen record"):
        type("Frozen", (State,), {}, frozen=True)
    copied = asdict(State(2.0, pwm={"1": 50.0}))
    assert copied == dataclasses.asdict(State(2.0, pwm={"1": 50.0})) == {"t": 2.0, "od": 0.05, "pwm": {"1": 50.0}}

    @dataclasses.dataclass
    class Tagged(State):
        tag: str = ""

    assert Tagged(1.0, tag="x").tag == "x" and not dataclasses.is_dataclass(Record)


def test_a_class_variable_is_not_a_field_with_or_without_postponed_annotations():
    # a plugin module without ``from __future__ import annotations`` gives typing.ClassVar objects, not strings
    namespace: dict = {}
    exec("from typing import ClassVar\nimport typing\n"
         "from reactorkit.core.records import Record\n"
         "class Event(Record, frozen=False, kw_only=False):\n"
         "    kind: ClassVar[str] = 'dose'\n"
         "    bare: ClassVar = 1\n"
         "    spelled: typing.ClassVar[int] = 2\n"
         "    message: str = ''\n", namespace)
    event_class = namespace["Event"]
    assert [f.name for f in event_class.__record_fields__] == ["message"]
    assert [f.name for f in dataclasses.fields(event_class)] == ["message"]
    event = event_class("m")
    assert event.message == "m" and event.kind == "dose" and repr(event) == "Event(message='m')"
    assert event_class.__match_args__ == ("message",)
    with pytest.raises(TypeError):
        event_class("m", "other")


@pytest.mark.parametrize("annotation", ["InitVar[float]", "dataclasses.KW_ONLY", dataclasses.InitVar[float],
                                        dataclasses.KW_ONLY, dataclasses.InitVar])
def test_a_dataclasses_marker_a_record_does_not_take_is_refused_where_the_class_is_declared(annotation):
    # else it became a field: a required "_" for KW_ONLY, and an InitVar stored and not passed to __post_init__
    with pytest.raises(TypeError, match=r"Reading\.(_|scale): a record does not take dataclasses\.(InitVar|KW_ONLY)"):
        type("Reading", (Record,), {"__annotations__": {"od": "float", "_" if "KW" in str(annotation) else "scale":
                                                        annotation}, "__qualname__": "Reading"})


def test_a_mutable_record_keeps_a_hash_of_its_own_as_a_dataclass_does():
    class Keyed(Record, frozen=False):
        """A mutable record hashed by its key only."""

        key: str
        od: float = 0.0

        def __hash__(self) -> int:
            return hash(self.key)

    @dataclasses.dataclass(kw_only=True)
    class KeyedDataclass:
        key: str
        od: float = 0.0

        def __hash__(self) -> int:
            return hash(self.key)

    assert hash(Keyed(key="a", od=1.0)) == hash("a") == hash(KeyedDataclass(key="a", od=1.0))
    assert type("Plain", (Keyed,), {}).__hash__ is None  # a subclass without one: eq without frozen, as @dataclass


def test_a_frozen_record_with_an_eq_of_its_own_is_hashed_by_its_fields_as_a_frozen_dataclass():
    class Channel(Record):
        """Compared without regard to case."""

        name: str

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Channel) and self.name.lower() == other.name.lower()

    @dataclasses.dataclass(frozen=True)
    class ChannelDataclass:
        name: str

        def __eq__(self, other: object) -> bool:
            return isinstance(other, ChannelDataclass) and self.name.lower() == other.name.lower()

    assert hash(Channel(name="A")) == hash(("A",)) == hash(ChannelDataclass("A"))
    assert Channel(name="A") == Channel(name="a")


def test_a_positional_record_refuses_a_required_field_after_a_defaulted_one_as_a_dataclass_does():
    with pytest.raises(TypeError, match="non-default argument 'od' follows default argument 't'"):
        type("Late", (Record,), {"__annotations__": {"t": "float", "od": "float"}, "t": 0.0}, kw_only=False)
    with pytest.raises(TypeError, match="non-default argument 'tag' follows default argument 'od'"):
        type("Tagged", (State,), {"__annotations__": {"tag": "str"}})  # State: t, od = 0.05, pwm (factory)
    keyword_only = type("Late", (Record,), {"__annotations__": {"t": "float", "od": "float"}, "t": 0.0})
    assert keyword_only(od=1.0).t == 0.0  # by keyword only, the order does not matter (as kw_only=True)


class Sample(Record):
    """A record as an older release declared it (replaced below by the next release's class of the same name)."""

    od: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleDataclass:
    """The same as a dataclass, to compare with."""

    od: float


def _next_release(monkeypatch, record_class: type, dataclass_class: type) -> None:
    """Put the next release's classes where pickle finds the old ones (this module, same qualified names)."""
    for new, name in ((record_class, "Sample"), (dataclass_class, "SampleDataclass")):
        new.__qualname__ = new.__name__ = name
        monkeypatch.setattr(sys.modules[__name__], name, new)


def test_a_record_pickled_before_a_field_with_a_default_was_added_behaves_as_a_dataclass_does(monkeypatch):
    old_record, old_dataclass = pickle.dumps(Sample(od=0.5)), pickle.dumps(SampleDataclass(od=0.5))

    class NextSample(Record):
        od: float
        unit: str = "AU"
        channels: tuple = field(default=(), repr=False)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NextSampleDataclass:
        od: float
        unit: str = "AU"
        channels: tuple = dataclasses.field(default=(), repr=False)

    _next_release(monkeypatch, NextSample, NextSampleDataclass)
    record, as_dataclass = pickle.loads(old_record), pickle.loads(old_dataclass)
    assert type(record) is NextSample and "unit" not in vars(record) and "unit" not in vars(as_dataclass)

    assert record == NextSample(od=0.5) and as_dataclass == NextSampleDataclass(od=0.5)
    assert record != NextSample(od=0.5, unit="OD600") and as_dataclass != NextSampleDataclass(od=0.5, unit="OD600")
    assert hash(record) == hash(NextSample(od=0.5)) == hash((0.5, "AU", ()))
    assert hash(as_dataclass) == hash(NextSampleDataclass(od=0.5)) == hash((0.5, "AU", ()))
    assert repr(record) == "Sample(od=0.5, unit='AU')" and repr(as_dataclass) == "SampleDataclass(od=0.5, unit='AU')"
    expected = {"od": 0.5, "unit": "AU", "channels": ()}
    assert asdict(record) == dataclasses.asdict(record) == dataclasses.asdict(as_dataclass) == expected
    assert replace(record, od=0.7) == dataclasses.replace(record, od=0.7) == NextSample(od=0.7)
    assert dataclasses.replace(as_dataclass, od=0.7) == NextSampleDataclass(od=0.7)


def test_a_record_pickled_before_a_field_with_a_default_factory_was_added_fails_as_a_dataclass_does(monkeypatch):
    # a default factory leaves no class attribute to fall back to: AttributeError, for a dataclass too
    old_record, old_dataclass = pickle.dumps(Sample(od=0.5)), pickle.dumps(SampleDataclass(od=0.5))

    class NextSample(Record):
        od: float
        pumps: dict = field(default_factory=dict)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NextSampleDataclass:
        od: float
        pumps: dict = dataclasses.field(default_factory=dict)

    _next_release(monkeypatch, NextSample, NextSampleDataclass)
    record, as_dataclass = pickle.loads(old_record), pickle.loads(old_dataclass)
    for loaded, fresh, as_dict, replaced in ((record, NextSample(od=0.5), asdict, replace),
                                             (as_dataclass, NextSampleDataclass(od=0.5), dataclasses.asdict,
                                              dataclasses.replace)):
        for use in (lambda: loaded == fresh, lambda: hash(loaded), lambda: repr(loaded), lambda: as_dict(loaded),
                    lambda: replaced(loaded, od=0.7)):
            with pytest.raises(AttributeError, match="pumps"):
                use()
        assert replaced(loaded, od=0.7, pumps={}) == type(fresh)(od=0.7)
