"""Records: classes declared as dataclasses are, whose classes cost nothing to define.

:class:`Record` is what the descriptor classes (:mod:`reactorkit.core.descriptors`) and the small data
classes of a job's start (the job registry's rows, the simulated vessel's state, an automation's events …)
are built on. A class that derives from it declares its fields as a dataclass does (annotations, defaults,
:func:`field` for a default factory or a field left out of ``repr``) and gets what ``@dataclass`` would give
it: an ``__init__`` that calls ``__post_init__``, ``__repr__`` and ``__eq__`` over the fields and, for a
frozen record, ``__hash__`` and assignment refused with :class:`dataclasses.FrozenInstanceError`. By default
a record is ``@dataclass(frozen=True, kw_only=True)``; the class keywords ``frozen`` and ``kw_only`` say
otherwise (``class State(Record, frozen=False, kw_only=False)`` is a plain ``@dataclass``), and a subclass
keeps its base's.

Why not ``@dataclass`` itself: it writes and compiles the source of up to six methods per class when the class
is defined (~90 functions for the descriptor classes alone), in every process that imports them — a job
started in a fresh interpreter among them, before it is ready. The methods here are shared by every record
and read the class's field list (:attr:`Record.__record_fields__`, built from the annotations when the class
is defined). They read each field through the instance, as ``@dataclass``'s do: a record pickled by an older
release (an rq job's arguments, saved job state) and loaded after a field with a default was added reads the
class attribute, which is the default (a field added with a default factory has none: AttributeError there,
as for a dataclass).

The records still count as dataclasses to the :mod:`dataclasses` module: ``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` work on them, a dataclass may derive from one, and
``inspect.signature`` shows the arguments. ``__dataclass_fields__``, ``__dataclass_params__`` and
``__signature__`` are built on first read, from a dataclass of the same fields made then (only code that
asks for them pays for it); :func:`replace` and :func:`asdict` here do not need them.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, dataclass_transform

#: marks a field without a default (or without a default factory)
MISSING: Any = type("MissingType", (), {"__repr__": lambda self: "MISSING"})()


class Field:
    """One field of a :class:`Record` class.

    Attributes:
        name: The field's name (its keyword argument).
        type: Its annotation, as written (a string under ``from __future__ import annotations``).
        default: Its default value, or :data:`MISSING`.
        default_factory: A callable that makes its default value, or :data:`MISSING`.
        repr: Shown by ``repr()`` (and, for the descriptors, a contract field that ``to_dict()`` serves).
    """

    __slots__ = ("name", "type", "default", "default_factory", "repr")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True,
                 name: str = "", type: Any = None) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name, self.type, self.default, self.default_factory, self.repr = (
            name, type, default, default_factory, repr)

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, type={self.type!r}, default={self.default!r}, "
                f"default_factory={self.default_factory!r}, repr={self.repr!r})")


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, repr: bool = True) -> Any:
    """A field of a :class:`Record` with a default factory, or left out of ``repr`` (as :func:`dataclasses.field`).

    Args:
        default: The default value.
        default_factory: A callable without arguments that makes the default value (for a mutable one).
        repr: Shown by ``repr()``.

    Raises:
        ValueError: both ``default`` and ``default_factory`` are given.
    """
    return Field(default=default, default_factory=default_factory, repr=repr)


class _FromDataclass:
    """A class attribute built on first read from a dataclass of the record's fields (see the module doc)."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type) -> Any:
        if not owner.__record_fields__:  # type: ignore[attr-defined]
            # Record itself, or a base without fields: not a dataclass (a frozen one, to a dataclass deriving from
            # a mutable record through it)
            raise AttributeError(self.attr)
        import inspect

        shadow = _dataclass_of(owner)
        value = inspect.signature(shadow) if self.attr == "__signature__" else getattr(shadow, self.attr)
        setattr(owner, self.attr, value)  # on the class: read once
        return value


def _dataclass_of(cls: type) -> type:
    """A frozen keyword-only dataclass with the fields of the record class ``cls`` (its field objects and
    parameters are those the :mod:`dataclasses` functions read)."""
    import dataclasses

    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                 "__doc__": cls.__doc__, "__annotations__": {}}
    for f in cls.__record_fields__:  # type: ignore[attr-defined]
        namespace["__annotations__"][f.name] = f.type
        options: dict[str, Any] = {"repr": f.repr}
        if f.default is not MISSING:
            options["default"] = f.default
        if f.default_factory is not MISSING:
            options["default_factory"] = f.default_factory
        namespace[f.name] = dataclasses.field(**options)
    return dataclasses.dataclass(frozen=cls.__record_frozen__, kw_only=cls.__record_kw_only__)(  # type: ignore[attr-defined]
        type(cls.__name__, (), namespace))


def _is_classvar(annotation: Any) -> bool:
    """Whether a class annotation declares a class variable, not a field (as :mod:`dataclasses` tells): ``ClassVar``
    or ``ClassVar[…]``, written as a string (``from __future__ import annotations``, also ``typing.ClassVar[…]``)
    or evaluated (a module without that import)."""
    if isinstance(annotation, str):
        return annotation.strip().removeprefix("typing.").startswith("ClassVar")
    return annotation is ClassVar or getattr(annotation, "__origin__", None) is ClassVar


def _dataclass_marker(annotation: Any) -> str | None:
    """``"InitVar"`` or ``"KW_ONLY"`` when a class annotation is one of these :mod:`dataclasses` markers (as a
    string or evaluated), which a record does not take; else None."""
    if isinstance(annotation, str):
        name = annotation.strip().removeprefix("dataclasses.")
        return next((marker for marker in ("InitVar", "KW_ONLY") if name.startswith(marker)), None)
    kind = annotation if isinstance(annotation, type) else type(annotation)
    if getattr(kind, "__module__", None) == "dataclasses":
        return {"InitVar": "InitVar", "_KW_ONLY_TYPE": "KW_ONLY"}.get(kind.__name__)
    return None


def _frozen(name: str) -> Exception:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(f"cannot assign to field {name!r}")


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of records (see the module doc): frozen and keyword-only unless the class says otherwise.

    A subclass declares its fields as class annotations; a field without a default is required. Fields
    of a base record come first; a subclass may declare one again (to give it another default).

    Class keywords:
        frozen: Assignment refused, and hashable (default: the base's, True for a first record class);
            a mutable record is not hashable, as a dataclass with ``eq`` and not ``frozen``.
        kw_only: Fields given by keyword only (default: the base's, True); else also by position, in order.

    Raises (at class definition):
        ValueError: a ``list``, ``dict`` or ``set`` default (give a ``default_factory``), as ``@dataclass``.
        TypeError: a field annotated ``dataclasses.InitVar`` or ``dataclasses.KW_ONLY``, which records do not take;
            a field without a default after one with a default in a record not keyword-only, as ``@dataclass``.
        TypeError: a mutable record deriving from a frozen one, or the reverse, as ``@dataclass``.
    Raises (at construction):
        TypeError: a positional argument of a keyword-only record (or more than there are fields), an
            unknown keyword, a field given twice, or a required field not given.
    """

    #: the record's fields, in order (bases' first)
    __record_fields__: ClassVar[tuple[Field, ...]] = ()
    __record_frozen__: ClassVar[bool] = True
    __record_kw_only__: ClassVar[bool] = True
    __match_args__: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[dict[str, Any]] = _FromDataclass("__dataclass_fields__")  # type: ignore[assignment]
    __dataclass_params__: ClassVar[Any] = _FromDataclass("__dataclass_params__")
    __signature__: ClassVar[Any] = _FromDataclass("__signature__")

    def __init_subclass__(cls, frozen: bool | None = None, kw_only: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if frozen is not None and cls.__record_fields__ and frozen != cls.__record_frozen__:
            raise TypeError(f"cannot inherit {'' if frozen else 'non-'}frozen record {cls.__name__} from a "
                            f"{'non-' if frozen else ''}frozen one")
        if frozen is not None:
            cls.__record_frozen__ = frozen
        if kw_only is not None:
            cls.__record_kw_only__ = kw_only
        if not cls.__record_frozen__ and "__setattr__" not in cls.__dict__:
            cls.__setattr__ = object.__setattr__  # type: ignore[method-assign,assignment]
            cls.__delattr__ = object.__delattr__  # type: ignore[method-assign,assignment]
            if "__hash__" not in cls.__dict__:  # a __hash__ of the class's own stays, as with @dataclass
                cls.__hash__ = None  # type: ignore[assignment]
        elif cls.__record_frozen__ and "__eq__" in cls.__dict__ and cls.__dict__.get("__hash__", MISSING) is None:
            # Python set __hash__ to None for the class's own __eq__; @dataclass(frozen=True) hashes the fields then
            cls.__hash__ = Record.__hash__  # type: ignore[method-assign]
        fields = {f.name: f for f in cls.__record_fields__}
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if _is_classvar(annotation):
                continue
            marker = _dataclass_marker(annotation)
            if marker is not None:  # else a field of that name, and a record that cannot be built as declared
                raise TypeError(f"{cls.__qualname__}.{name}: a record does not take dataclasses.{marker} (a "
                                "keyword-only record is the class keyword kw_only=True; a value only for "
                                "__post_init__ is a field, or an argument of a classmethod that builds the record)")
            value = cls.__dict__.get(name, MISSING)
            if isinstance(value, Field):
                f = Field(value.default, value.default_factory, value.repr, name, annotation)
                if f.default is MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, f.default)  # the class attribute is the default, as with @dataclass
            else:
                if isinstance(value, (list, dict, set)):
                    raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: "
                                     "use default_factory")
                f = Field(value, MISSING, True, name, annotation)
            fields[name] = f
        if not cls.__record_kw_only__:  # by position: a field without a default never follows one with a default
            with_default = None
            for f in fields.values():
                if f.default is not MISSING or f.default_factory is not MISSING:
                    with_default = with_default or f.name
                elif with_default is not None:
                    raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument "
                                    f"{with_default!r}")
        cls.__record_fields__ = tuple(fields.values())
        cls.__match_args__ = () if cls.__record_kw_only__ else tuple(fields)
        for attr in ("__dataclass_fields__", "__dataclass_params__", "__signature__"):
            setattr(cls, attr, _FromDataclass(attr))  # not a base's, already built for the base's fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = self.__dict__
        missing = []
        if args:
            fields = self.__record_fields__
            if self.__record_kw_only__ or len(args) > len(fields):
                allowed = 0 if self.__record_kw_only__ else len(fields)
                raise TypeError(f"{type(self).__qualname__}.__init__() takes {allowed + 1} positional argument"
                                f"{'s' if allowed else ''} but {len(args) + 1} were given")
            for f, value in zip(fields, args):
                if f.name in kwargs:
                    raise TypeError(f"{type(self).__qualname__}.__init__() got multiple values for argument "
                                    f"{f.name!r}")
                kwargs[f.name] = value
        for f in self.__record_fields__:
            name = f.name
            if name in kwargs:
                values[name] = kwargs.pop(name)
            elif f.default is not MISSING:
                values[name] = f.default
            elif f.default_factory is not MISSING:
                values[name] = f.default_factory()
            else:
                missing.append(name)
        if kwargs:
            raise TypeError(f"{type(self).__qualname__}.__init__() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")
        if missing:
            names = " and ".join(", ".join(repr(n) for n in missing).rsplit(", ", 1))
            plural = "s" if len(missing) > 1 else ""
            kind = "keyword-only" if self.__record_kw_only__ else "positional"
            raise TypeError(f"{type(self).__qualname__}.__init__() missing {len(missing)} required {kind} "
                            f"argument{plural}: {names}")
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def _values(self) -> tuple[Any, ...]:
        # through the instance, as @dataclass's methods: a record pickled before a field with a default was added
        # has no such key in its __dict__ and reads the class attribute (the default)
        return tuple([getattr(self, f.name) for f in self.__record_fields__])

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise _frozen(name)

    def __delattr__(self, name: str) -> None:
        raise _frozen(name)


def replace(record: Any, **changes: Any) -> Any:
    """A copy of ``record`` with ``changes`` (field name → value), checked again by its ``__post_init__``
    (as :func:`dataclasses.replace`, without building the dataclass view of the record's class).

    Fields are read through the record (``getattr``), as :func:`dataclasses.replace` does: a record pickled before
    a field with a default was added gets that default.

    Raises:
        TypeError: a name that is not a field of the record.
        AttributeError: a field with a default factory, not in ``changes``, that the record has no value for
            (pickled before the field was added), as :func:`dataclasses.replace`.
    """
    fields = type(record).__record_fields__
    values = {f.name: getattr(record, f.name) for f in fields if f.name not in changes}
    if len(values) + len(changes) != len(fields):  # a change that is not a field
        unknown = set(changes).difference(f.name for f in fields)
        raise TypeError(f"{type(record).__qualname__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(record)(**values)


def asdict(record: Any) -> dict[str, Any]:
    """``{field name: value}`` of ``record``, records within it turned into dicts too and lists, tuples and
    dicts copied (as :func:`dataclasses.asdict`, without building the dataclass view of the record's class).

    Fields are read through the record (``getattr``), as :func:`dataclasses.asdict` does: a record pickled before a
    field with a default was added gets that default.

    Raises:
        AttributeError: a field with a default factory that the record has no value for (pickled before the field
            was added), as :func:`dataclasses.asdict`.
    """
    return {f.name: _plain(getattr(record, f.name)) for f in type(record).__record_fields__}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return asdict(value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_plain(v) for v in value)
    import copy

    return copy.deepcopy(value)
