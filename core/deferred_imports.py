"""Modules put off until their first use: a stand-in in ``sys.modules`` that imports the module when one of its
attributes is first read.

For modules that a job process imports only because a library imports them at its top, and does not use
before it is ready (or at all): paho's ``urllib.request`` (read only for proxy settings when PySocks is
installed), ``inspect`` (which :mod:`dataclasses` reads only for a class without a docstring), ``uuid`` (and
the ``platform`` it imports; paho and the outbox read it only to make a new id). ``import name`` then binds
the stand-in; any read of an attribute (``name.attr``, ``from name import attr``) imports the real module,
which replaces the stand-in in ``sys.modules`` and as its package's attribute, and is served through it to
whoever holds the stand-in. Nothing changes but when the import happens.

A few attributes that a module only re-exports from a cheaper one (:data:`SERVED_FROM`) are served by its
stand-in from that one, without importing the module: paho reads ``ssl.SSLWantReadError`` and
``ssl.SSLWantWriteError`` (the classes of the C module ``_ssl``, which ``ssl`` imports them from) each time a
read or write of its socket would block, TLS or not, so a job whose broker connection has no TLS would
otherwise import ``ssl`` (~3 ms of CPU beyond ``_ssl``) right after connecting; and ``asyncio.sslproto``, imported
by ``import asyncio``, reads ``ssl.SSLWantReadError`` and ``ssl.SSLSyscallError`` at its import, which imported
``ssl`` (~5 ms) for the gmqtt job that never uses TLS. The other exception classes ``ssl`` re-exports from ``_ssl``
are served the same way.

A function whose result the stand-in can give without the module (:data:`COMPUTED`) is served by a function of
this module giving the same results: ``platform.system()``, which paho calls at its import, from ``os.uname()``
(:func:`platform_system`).

Served from ``_ssl``, paho's two classes still imported ``_ssl`` itself (libssl and libcrypto: 2.4-4.7 ms) at the
first read that would block. paho alone sees ``ssl`` through an :class:`ExceptClauseView` of the stand-in
(:func:`reactorkit.core.mqtt.import_paho`), which serves a placeholder class for them while ``_ssl`` is not
imported, since it reads them only in ``except`` clauses, at each use; a module that keeps what it reads (asyncio)
reads the stand-in.

Not :class:`importlib.util.LazyLoader`: on Python 3.11 its module switches its class back before its attributes are
filled in, so a second thread reading an attribute at that moment fails (CPython issue gh-114763, fixed only in later
Python releases); here the real module is imported under the import system's own module lock and only then served.
"""

from __future__ import annotations

import _thread
import importlib
import importlib.util
import os
import sys
import types
from typing import Any

#: module -> (the module it re-exports these attributes from, the attributes): what a stand-in serves from there
SERVED_FROM: dict[str, tuple[str, frozenset[str]]] = {
    # every exception class ssl re-exports unchanged from _ssl (ssl.X is _ssl.X on 3.11)
    "ssl": ("_ssl", frozenset({"SSLError", "SSLZeroReturnError", "SSLWantReadError", "SSLWantWriteError",
                               "SSLSyscallError", "SSLEOFError", "SSLCertVerificationError"})),
}


def platform_system() -> str:
    """``platform.system()``, without importing :mod:`platform` (its import compiles half a dozen regular
    expressions: 1.8-2.4 ms in a fresh interpreter on the benchmark machine, load 0.1) where it is ``os.uname()``'s system name: paho calls it at its import (to
    tell Windows's EAGAIN), the only use of ``platform`` before a job is ready.

    Python 3.11's ``platform.uname()`` takes ``os.uname()`` as it is when one of its fields is not empty, but
    names a system ``'Microsoft'`` of release ``'Windows'`` ``'Windows'`` and an ``'unknown'`` one ``''``. Without
    ``os.uname`` (Windows), with every field empty, or for that one system, and once ``platform`` is imported
    (its function may be patched, e.g. by a test), this is ``platform.system()`` itself.
    """
    real = sys.modules.get("platform")
    own = None if real is None or type(real) is ImportedOnUse else getattr(real, "system", None)
    if own is None:
        try:
            infos = os.uname()
        except AttributeError:
            infos = None
        if infos is not None and any(infos) and not (infos.sysname == "Microsoft" and infos.release == "Windows"):
            return "" if infos.sysname == "unknown" else infos.sysname
        own = (_import_real(real) if type(real) is ImportedOnUse else importlib.import_module("platform")).system
    return own()


#: module -> {attribute: function}: what a stand-in serves in place of one of the module's functions, giving what
#: the module's own gives (see each one), without importing the module
COMPUTED: dict[str, dict[str, Any]] = {
    "platform": {"system": platform_system},
}


class ImportedOnUse(types.ModuleType):
    """Stands in ``sys.modules`` for a module until one of its attributes is read (see the module doc)."""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get("_imported")
        if real is None:
            source, served = SERVED_FROM.get(self.__name__, ("", frozenset()))
            if attr in served:  # the same object as the module's own (it imports it from there)
                return getattr(importlib.import_module(source), attr)
            computed = COMPUTED.get(self.__name__, {}).get(attr)
            if computed is not None:  # same results as the module's own function
                return computed
            real = _import_real(self)
        return getattr(real, attr)


#: held while a stand-in is checked and taken out of ``sys.modules`` (:func:`_import_real`), never during an import
_taking_out = _thread.RLock()


def _new_lock_in_child() -> None:
    """A forked child's own :data:`_taking_out` (the parent's may have been held by a thread the child has not)."""
    global _taking_out
    _taking_out = _thread.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _import_real(stand_in: ImportedOnUse) -> types.ModuleType:
    """The real module of ``stand_in``, imported now if it is not yet (and served through it from then on)."""
    real = stand_in.__dict__.get("_imported")
    if real is None:
        # no lock of ours around the import (a thread importing a module that reads a stand-in would wait for
        # one held by a thread waiting for that module's import lock): the import system's own module locks
        # let one thread import it while any other asking for it waits, then gets the same module
        name = stand_in.__name__
        # the stand-in taken out in one step (the check and the removal under a lock held for nothing else): a
        # thread that saw the stand-in, then paused while another one took it out and began the import, would
        # otherwise take out that import's module (its import then fails with a KeyError, or a second copy is made)
        with _taking_out:
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
        real = importlib.import_module(name)  # binds it as its package's attribute, as any import does
        stand_in.__dict__.update(real.__dict__)
        stand_in.__dict__["_imported"] = real
    return real


def defer(*names: str) -> None:
    """Put a stand-in (:class:`ImportedOnUse`) in ``sys.modules`` for each of ``names`` that is not imported yet
    (at a process's start, before other threads import).

    A name that cannot be found (``importlib.util.find_spec`` gives None, or its package is missing) is left
    alone: its import fails as before; so is one that another thread imports meanwhile. A package's stand-in
    would serve no submodule: give modules, not packages. Raises nothing of its own.

    Args:
        names: Absolute module names, e.g. ``"urllib.request"`` (its package is imported now).
    """
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:  # its package cannot be found
            continue
        if spec is None or spec.submodule_search_locations is not None:
            continue
        stand_in = ImportedOnUse(name)
        stand_in.__spec__ = spec
        # only where no module is yet (setdefault is one step under the GIL): another thread may have imported it
        # since the check above, and a stand-in in its place would import a second copy at its first use
        if sys.modules.setdefault(name, stand_in) is not stand_in:
            continue
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)  # as the import system binds a submodule


#: module -> (the C module whose exception classes these are, the classes): what a :class:`ExceptClauseView` of the
#: module serves as a placeholder while that C module is not imported (an instance of these classes cannot exist then)
UNRAISABLE_UNTIL_IMPORTED: dict[str, tuple[str, frozenset[str]]] = {
    "ssl": ("_ssl", frozenset({"SSLWantReadError", "SSLWantWriteError"})),
}
_placeholders: dict[tuple[str, str], type] = {}


def _placeholder(module: str, attr: str, base: type = Exception) -> type:
    """The placeholder of ``module.attr``: a subclass of ``base`` of which nothing is an instance (building one
    builds the real class's instead, after importing ``module``), so no ``except`` clause meets it and no
    ``isinstance`` check finds it. One class per name, whichever thread built it first."""
    cls = _placeholders.get((module, attr))
    if cls is None:
        def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), attr)(*args, **kwargs)

        cls = type(attr, (base,), {"__new__": __new__, "__module__": __name__,
                                   "__doc__": f"Stands for {module}.{attr} while {module} is not imported."})
        cls = _placeholders.setdefault((module, attr), cls)
    return cls


class _PlaceholderView(types.ModuleType):
    """A module as one library sees it: a placeholder class for some of its classes while they cannot have an
    instance (:meth:`_placeholder_of` says which, and whose class each stands for), everything else read from the
    module (or its stand-in) it was made of. The check is made at each read (nothing is cached)."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__(module.__name__)
        self.__dict__["_module"] = module

    def _placeholder_of(self, attr: str) -> tuple[str, type] | None:
        """``(module whose attr the placeholder stands for, the placeholder's base)`` while ``attr`` must be served
        a placeholder, else None."""
        raise NotImplementedError

    def __getattr__(self, attr: str) -> Any:
        placeholder = self._placeholder_of(attr)
        if placeholder is not None:
            module, base = placeholder
            return _placeholder(module, attr, base)
        return getattr(self.__dict__["_module"], attr)


class ExceptClauseView(_PlaceholderView):
    """A module as one library sees it, whose only reads of some exception classes are in ``except`` clauses, each
    time the clause is reached: serves a placeholder class (which nothing raises) for each of them while the C
    module they belong to (:data:`UNRAISABLE_UNTIL_IMPORTED`) is not imported, and everything else from the
    module (or its stand-in) it was made of.

    paho's network thread reads ``ssl.SSLWantReadError`` and ``ssl.SSLWantWriteError`` in the ``except``
    clauses of every socket read or write that would block, TLS or not: the first one, right after the
    connection's CONNECT, imported ``_ssl`` (the C module with libssl and libcrypto: 2.4-4.7 ms, this
    machine, load 0.1) in every job while it was waiting for the broker's CONNACK. Until ``_ssl`` is imported
    (by anyone: a TLS connection's context, httpx, asyncio's ssl support) no SSL socket can exist, so no
    exception of those classes can reach the clause; once it is, the real classes are served. The check is
    made at each read (nothing is cached), so whichever thread imports ``_ssl``, a clause reached after an
    SSL socket's exception was raised (which needs ``_ssl`` imported first) reads the real class.

    Only for a library whose reads have been checked to be such clauses: a module that keeps the class it
    reads (``asyncio.sslproto`` builds a tuple of ``ssl`` classes at its import) must read the module itself.
    """

    def _placeholder_of(self, attr: str) -> tuple[str, type] | None:
        source, names = UNRAISABLE_UNTIL_IMPORTED.get(self.__name__, ("", frozenset()))
        return (source, Exception) if attr in names and source not in sys.modules else None


def except_clause_view(module: Any) -> Any:
    """``module`` as a :class:`ExceptClauseView` when it is the stand-in of a module of
    :data:`UNRAISABLE_UNTIL_IMPORTED` (not imported yet, see :func:`defer`); else ``module`` itself (the real
    module, None, or a view already)."""
    if type(module) is ImportedOnUse and module.__name__ in UNRAISABLE_UNTIL_IMPORTED:
        return ExceptClauseView(module)
    return module


#: module -> classes it defines itself that a :class:`InstanceCheckView` of it serves as placeholders while only its
#: stand-in is in ``sys.modules`` (no instance of a class can exist before the module that defines it is imported)
UNDEFINED_UNTIL_IMPORTED: dict[str, frozenset[str]] = {"ssl": frozenset({"SSLSocket"})}


class InstanceCheckView(_PlaceholderView):
    """A module as one library sees it, whose only reads of some classes the module defines are ``isinstance``
    checks made at each call: serves a placeholder class (of which nothing is an instance) for each of them
    (:data:`UNDEFINED_UNTIL_IMPORTED`) while the module is not imported (only its stand-in is in ``sys.modules``),
    and everything else from the module (or its stand-in) it was made of.

    asyncio's connections (``create_connection``, with a host or a socket, and ``sock_connect``) check that the
    socket is not an ``ssl.SSLSocket`` (``asyncio.base_events._check_ssl_socket``): that read imported ``ssl``
    (2.0 ms of CPU beyond ``_ssl``, this machine, load 0.1) at the first connection of a process that never uses
    TLS. Until ``ssl`` is imported no ``SSLSocket`` can exist (the class is defined there), so the check finds none;
    the check is made at each read (nothing is cached), and once ``ssl`` is imported (a TLS context, by any thread)
    the real class is served.

    Only for a library whose reads have been checked to be such checks: a module that keeps the class it reads, or
    subclasses it, must read the module itself.
    """

    def _placeholder_of(self, attr: str) -> tuple[str, type] | None:
        name = self.__name__
        if attr in UNDEFINED_UNTIL_IMPORTED.get(name, ()) and type(sys.modules.get(name)) is ImportedOnUse:
            return (name, object)
        return None


def import_asyncio() -> types.ModuleType:
    """``asyncio``, imported; when ``ssl`` is put off (``pio run``: :func:`defer`), the ``ssl`` that
    ``asyncio.base_events`` reads is made a :class:`InstanceCheckView` of its stand-in: asyncio reads
    ``ssl.SSLSocket`` there only for its ``isinstance`` check of the socket of each connection, which then does
    not import ``ssl`` in a process without TLS. (``asyncio.sslproto`` reads ``ssl.SSLWantReadError`` and
    ``ssl.SSLSyscallError`` at its import, served from ``_ssl``: :data:`SERVED_FROM`.)"""
    import asyncio
    import asyncio.base_events as base_events

    seen = base_events.__dict__.get("ssl")
    if type(seen) is ImportedOnUse and seen.__name__ in UNDEFINED_UNTIL_IMPORTED:
        base_events.ssl = InstanceCheckView(seen)
    return asyncio
