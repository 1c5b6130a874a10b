"""``pio run <job>`` in a fresh interpreter (no launcher) imports only what the job needs before ``$state=ready``:
not the modules a job's start used to load for nothing (paho's urllib.request with http.client and email,
dataclasses (its records are reactorkit.core.records) and its inspect with ast and dis, paho's ssl (and _ssl),
hashlib, base64 and platform, logging's traceback, the idna codec's stringprep, od_reading's statistics with decimal
and fractions, the simulated hardware's filelock, the plugin registry, pkgutil, click). Reported by the process
itself at ``ready``; and a module put off until its first use is imported then."""

import json
import subprocess
import sys

import pytest

# the job process as the console script runs it, reporting the modules it has imported (not the stand-ins of
# modules put off until their first use) when it publishes ready, then stopping as a SIGTERM stops it; the job
# module is patched as it is imported, so that the harness imports nothing ahead of the job
HARNESS = """
import importlib.util, json, os, signal, sys

def patch(job):
    set_state = job.BackgroundJob.set_state
    def report(self, new_state):
        set_state(self, new_state)
        if new_state == job.READY:
            real = sorted(name for name, module in sys.modules.items() if type(module).__name__ == "module")
            print("MODULES " + json.dumps(real), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
    job.BackgroundJob.set_state = report

class Hook:
    def find_spec(self, name, path=None, target=None):
        if name != "reactorkit.core.job":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module
        def run(module):
            exec_module(module)
            patch(module)
        spec.loader.exec_module = run
        return spec

sys.meta_path.insert(0, Hook())
sys.argv = ["pio", *sys.argv[1:]]
from reactorkit.core.cli.entry import main
main()
"""

JOBS = [
    ("stirring",),
    ("od_reading",),
    ("growth_rate_calculating",),
    ("dosing_automation", "--automation-name", "silent"),
    ("led_automation", "--automation-name", "silent"),
    ("temperature_automation", "--automation-name", "only_record_temperature"),
]
NOT_BEFORE_READY = ("urllib.request", "http.client", "email", "filelock", "tempfile", "bz2", "lzma", "click", "pluggy",
                    "importlib.metadata", "zipfile", "reactorkit.core.plugins", "inspect", "ast", "dis", "ssl", "hashlib",
                    "traceback", "linecache", "tokenize", "textwrap", "dataclasses", "copy", "base64", "binascii",
                    "stringprep", "statistics", "decimal", "fractions", "platform", "_ssl", "pkgutil")


@pytest.mark.parametrize("job", JOBS, ids=[j[0] for j in JOBS])
def test_a_job_started_without_a_launcher_is_ready_without_modules_it_does_not_use(unit_env, job):
    env = unit_env.env(REACTORKIT_LAUNCHER="0")
    # the CLI index, as any earlier `pio` command leaves it (building it loads the plugin registry)
    subprocess.run([sys.executable, "-m", "reactorkit.core.cli.entry", "run", "--help"], env=env, check=True,
                   capture_output=True, timeout=60)
    result = subprocess.run([sys.executable, "-c", HARNESS, "run", *job], env=env, capture_output=True, text=True,
                            timeout=60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    assert result.returncode == 0 and lines, result.stderr[-2000:]
    modules = set(json.loads(lines[0][len("MODULES "):]))
    assert "paho.mqtt.client" in modules  # it did connect
    assert not modules & set(NOT_BEFORE_READY)


STAND_IN = """
import sys
from reactorkit.core.mqtt import import_paho
client = import_paho()
print("after paho:", "http.client" in sys.modules)
import urllib.request
print("after import:", "http.client" in sys.modules)
from urllib.request import getproxies
print("after use:", "http.client" in sys.modules, callable(getproxies), type(sys.modules["urllib.request"]).__name__)
print("same:", urllib.request.Request is sys.modules["urllib.request"].Request, client.Client is not None)
"""


def script_output(code: str) -> list[str]:
    """The lines ``python -c code`` prints (a fresh interpreter, so nothing is imported yet); it must exit 0."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_pahos_urllib_request_is_imported_at_its_first_use():
    assert script_output(STAND_IN) == ["after paho: False", "after import: False",
                                          "after use: True True module", "same: True True"]


DEFERRED = """
import sys
from reactorkit.core.deferred_imports import defer
names = ("inspect", "uuid", "no_such_module_here", "email")
defer(*names)  # a module not found, and a package, are left alone
print(sorted(n for n in names if type(sys.modules.get(n)).__name__ == "ImportedOnUse"))
import dataclasses
@dataclasses.dataclass
class Documented:
    "A docstring."
    x: int
print("documented:", type(sys.modules["inspect"]).__name__)
@dataclasses.dataclass
class Bare:
    x: int
print(Bare.__doc__, type(sys.modules["inspect"]).__name__, dataclasses.inspect.signature is sys.modules["inspect"].signature)
import uuid
print(len(uuid.uuid4().hex), type(sys.modules["uuid"]).__name__)
"""


def test_a_deferred_module_is_imported_at_the_first_read_of_an_attribute_and_serves_as_the_module():
    assert script_output(DEFERRED) == ["['inspect', 'uuid']", "documented: ImportedOnUse",
                                          "Bare(x: int) module True", "32 module"]


RACED = """
import importlib, importlib.util, sys
from reactorkit.core.deferred_imports import defer

find_spec = importlib.util.find_spec
def find_spec_while_another_thread_imports(name, package=None):
    spec = find_spec(name, package)
    importlib.import_module(name)  # another thread's import completes between the look-up and the stand-in
    return spec
importlib.util.find_spec = find_spec_while_another_thread_imports
defer("colorsys")
importlib.util.find_spec = find_spec
real = sys.modules["colorsys"]
print(type(real).__name__, importlib.import_module("colorsys") is real, real.rgb_to_hsv(1, 0, 0))
defer("no_such_package_here.module")  # its package cannot be found: left alone, its import fails as before
print("no_such_package_here.module" in sys.modules)
"""


def test_a_module_imported_by_another_thread_meanwhile_is_not_replaced_by_a_stand_in():
    # a second copy of the module would otherwise be imported at the stand-in's first use
    assert script_output(RACED) == ["module True (0.0, 1.0, 1)", "False"]


# threads reading stand-ins at once, as paho's network thread, a job's writer thread and its main thread do: each
# module in memory (no file to read), its import a little work; many rounds, a few threads, a switch at every chance
READ_AT_ONCE = """
import importlib.abc, importlib.util, sys, threading
from reactorkit.core.deferred_imports import defer

class InMemory(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name.startswith("read_at_once_") else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.total = sum(range(2000))
        module.value = object()

sys.meta_path.insert(0, InMemory())
sys.setswitchinterval(1e-6)
errors, copies = [], 0
for round_ in range(2000):
    names = [f"read_at_once_{round_}_{k}" for k in range(4)]
    defer(*names)
    stand_ins = [sys.modules[name] for name in names]
    seen = {name: set() for name in names}
    barrier = threading.Barrier(4)
    def read(first):
        barrier.wait()
        for k in range(4):
            stand_in = stand_ins[(first + k) % 4]
            try:
                seen[stand_in.__name__].add(id(stand_in.value))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    threads = [threading.Thread(target=read, args=(first,)) for first in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copies += sum(len(ids) != 1 or sys.modules[name].value.__class__ is not object for name, ids in seen.items())
print(sorted(set(errors))[:3], copies)
"""


def test_stand_ins_read_by_threads_at_once_import_one_module_each_without_error():
    # a thread that saw a stand-in in sys.modules, then paused while another took it out and began the import, took
    # out that import's module: the import failed (KeyError) or a second copy of the module was made
    assert script_output(READ_AT_ONCE) == ["[] 0"]


# a process forked (the launcher's jobs) while one of its threads was taking a stand-in out of sys.modules
FORKED_MEANWHILE = """
import os, signal, sys, threading
from reactorkit.core import deferred_imports
deferred_imports.defer("colorsys")
holding, forked = threading.Event(), threading.Event()
def take_out():
    with deferred_imports._taking_out:
        holding.set()
        forked.wait()
thread = threading.Thread(target=take_out)
thread.start()
holding.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a child stuck on the parent's lock ends rather than outliving the test
    print("child", sys.modules["colorsys"].rgb_to_hsv(1, 0, 0), flush=True)
    os._exit(0)
forked.set()
thread.join()
print("child exit", os.waitpid(pid, 0)[1], "parent", sys.modules["colorsys"].rgb_to_hsv(1, 0, 0))
"""


def test_a_child_forked_while_a_thread_takes_a_stand_in_out_still_imports_its_deferred_modules():
    assert script_output(FORKED_MEANWHILE) == ["child (0.0, 1.0, 1)", "child exit 0 parent (0.0, 1.0, 1)"]


SSL_CLASSES = """
import sys
from reactorkit.core.deferred_imports import defer
defer("ssl")
import ssl
try:
    raise BlockingIOError()
except ssl.SSLWantReadError:  # what paho's socket reads do, TLS or not
    print("caught")
except ssl.SSLWantWriteError:
    print("caught")
except BlockingIOError:
    print("not caught:", "ssl" in sys.modules and type(sys.modules["ssl"]).__name__)
served = ssl.SSLWantReadError
print(ssl.SSLContext is not None, type(sys.modules["ssl"]).__name__, served is ssl.SSLWantReadError)
"""


def test_ssls_exception_classes_are_served_without_importing_ssl():
    # the stand-in serves paho's except clauses the classes ssl itself re-exports from _ssl; any other name imports ssl
    assert script_output(SSL_CLASSES) == ["not caught: ImportedOnUse", "True module True"]


IDNA_AND_BASE64 = """
import sys
from reactorkit.core.deferred_imports import defer
defer("stringprep", "base64")
print("localhost".encode("idna"), type(sys.modules["stringprep"]).__name__)  # an ASCII host: no stringprep
print("b\\u00fccher.example".encode("idna"), type(sys.modules["stringprep"]).__name__)  # nameprep reads it
import base64
print(type(sys.modules["base64"]).__name__, base64.b64encode(b"ab"), type(sys.modules["base64"]).__name__)
"""


def test_the_idna_codec_and_base64_work_with_their_deferred_modules():
    # the job's str broker host goes through the idna codec (getaddrinfo); paho and the automations read base64
    assert script_output(IDNA_AND_BASE64) == ["b'localhost' ImportedOnUse", "b'xn--bcher-kva.example' module",
                                                 "ImportedOnUse b'YWI=' module"]


ASYNCIO_WITHOUT_SSL = """
import sys, _ssl
from reactorkit.core.deferred_imports import SERVED_FROM, defer
defer("ssl")
import asyncio, asyncio.sslproto  # sslproto reads ssl.SSLWantReadError and ssl.SSLSyscallError at its import
print(type(sys.modules["ssl"]).__name__, asyncio.sslproto.SSLAgainErrors == (_ssl.SSLWantReadError, _ssl.SSLSyscallError))
served = {name: getattr(sys.modules["ssl"], name) for name in sorted(SERVED_FROM["ssl"][1])}
print(type(sys.modules["ssl"]).__name__)
import ssl
ssl.create_default_context  # any other name imports ssl
print(type(sys.modules["ssl"]).__name__, all(served[name] is getattr(sys.modules["ssl"], name) for name in served))
"""


def test_asyncio_imports_without_ssl_and_each_served_class_is_ssls_own():
    # the gmqtt job imports asyncio before ready without ever using TLS; a served class must be the one ssl raises
    assert script_output(ASYNCIO_WITHOUT_SSL) == ["ImportedOnUse True", "ImportedOnUse", "module True"]


PAHO_SSL_VIEW = """
import sys
from reactorkit.core.deferred_imports import defer
defer("ssl")  # as `pio run` does
from reactorkit.core.mqtt import import_paho
client = import_paho()
print(type(client.ssl).__name__, type(sys.modules["ssl"]).__name__)

class Socket:
    def __init__(self, error):
        self.error = error
    def recv(self, n):
        raise self.error()
    def send(self, buf):
        raise self.error()

c = client.Client(client.CallbackAPIVersion.VERSION2)
for method in (c._sock_recv, c._sock_send):  # a plain socket that would block, as after every CONNECT
    c._sock = Socket(BlockingIOError)
    try:
        method(b"x" if method == c._sock_send else 1)
    except BlockingIOError as exc:
        print("would block:", type(exc.__cause__).__name__, "_ssl" in sys.modules)
placeholder = client.ssl.SSLWantReadError
raised = placeholder()  # nothing can raise the placeholder itself: building one builds the real class's
import _ssl
print(type(raised) is _ssl.SSLWantReadError, placeholder is _ssl.SSLWantReadError)
# _ssl imported (here by the line above; by any TLS connection's context in a job): the real classes, at each read
print(client.ssl.SSLWantReadError is _ssl.SSLWantReadError, client.ssl.SSLWantWriteError is _ssl.SSLWantWriteError)
for error in (_ssl.SSLWantReadError, _ssl.SSLWantWriteError):  # what an SSL socket raises: paho's would-block
    c._sock = Socket(error)
    try:
        c._sock_recv(1)
    except BlockingIOError as exc:
        print("from", type(exc.__cause__).__name__)
context_class = client.ssl.SSLContext  # any other name imports ssl, as through its stand-in
print(type(sys.modules["ssl"]).__name__, context_class is sys.modules["ssl"].SSLContext)
"""


def test_pahos_socket_reads_that_would_block_do_not_import_ssl_and_ssl_exceptions_still_reach_its_clauses():
    assert script_output(PAHO_SSL_VIEW) == [
        "ExceptClauseView ImportedOnUse",
        "would block: NoneType False", "would block: BlockingIOError False",
        "True False",
        "True True",
        "from SSLWantReadError", "from SSLWantWriteError",
        "module True",
    ]


PLATFORM_SYSTEM = """
import os, sys
from reactorkit.core.deferred_imports import defer
defer("platform")
import platform
served = platform.system()  # what paho calls at its import
print(type(sys.modules["platform"]).__name__, served == os.uname().sysname)
real_uname = os.uname
class Uname(tuple):
    sysname = property(lambda self: self[0])
    release = property(lambda self: self[2])
os.uname = lambda: Uname(("unknown", "host", "6.1", "#1", "x86_64"))
print(repr(platform.system()), type(sys.modules["platform"]).__name__)
os.uname = real_uname
platform.machine()  # any other name imports platform
real = sys.modules["platform"]
print(type(real).__name__, platform.system() == real.system() == served)
real.system = lambda: "Patched"  # once imported, its own function (a test may patch it)
from reactorkit.core.deferred_imports import platform_system
print(platform_system())
"""


def test_platform_system_is_answered_without_importing_platform_and_as_platform_answers_it():
    # paho calls platform.system() at its import; importing platform for it was 1.8-2.4 ms of a job's start
    assert script_output(PLATFORM_SYSTEM) == ["ImportedOnUse True", "'' ImportedOnUse", "module True", "Patched"]


WINDOWS_UNAME = """
import os, sys
from reactorkit.core.deferred_imports import defer, platform_system
class Uname(tuple):
    sysname = property(lambda self: self[0])
    release = property(lambda self: self[2])
defer("platform")
os.uname = lambda: Uname(("Microsoft", "host", "Windows", "6.0", "x86"))
print(platform_system(), type(sys.modules["platform"]).__name__)  # the one system platform renames: its own answer
"""


def test_the_system_platform_renames_is_asked_of_platform_itself():
    assert script_output(WINDOWS_UNAME) == ["Windows module"]


INGESTION_NOT_BEFORE_READY = ("ssl", "locale", "linecache", "tokenize", "textwrap", "ctypes", "paho.mqtt.client",
                              "urllib.request", "http.client", "email", "click", "hashlib", "uuid", "base64")


def test_the_ingestion_started_without_a_launcher_is_ready_without_modules_it_does_not_use(unit_env):
    # asyncio imports subprocess (with locale) and traceback (with linecache, tokenize, textwrap), read by none
    # before ready, and checks each connection's socket against ssl.SSLSocket; ctypes (the heap's trim after the
    # migration) is imported once the job is ready
    unit_env.unit = "leader"
    env = unit_env.env(REACTORKIT_LAUNCHER="0")
    subprocess.run([sys.executable, "-m", "reactorkit.core.cli.entry", "run", "--help"], env=env, check=True,
                   capture_output=True, timeout=60)
    result = subprocess.run([sys.executable, "-c", HARNESS, "run", "mqtt_to_db_streaming"], env=env,
                            capture_output=True, text=True, timeout=60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    assert result.returncode == 0 and lines, result.stderr[-2000:]
    modules = set(json.loads(lines[0][len("MODULES "):]))
    assert "gmqtt.client" in modules and "asyncio" in modules  # it did connect
    assert not modules & set(INGESTION_NOT_BEFORE_READY)


ASYNCIO_CONNECTS_WITHOUT_SSL = """
import socket, sys
from reactorkit.core.deferred_imports import defer, import_asyncio
defer("ssl")  # as `pio run` does, before asyncio is imported
asyncio = import_asyncio()
be = asyncio.base_events
print(type(be.ssl).__name__, type(sys.modules["ssl"]).__name__)
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
address = server.getsockname()
loop = asyncio.new_event_loop()
transport, _ = loop.run_until_complete(loop.create_connection(asyncio.Protocol, *address))
plain = transport.get_extra_info("socket")
print("connected:", type(sys.modules["ssl"]).__name__, isinstance(plain, be.ssl.SSLSocket))
transport.close()
import ssl
context = ssl.create_default_context()  # ssl imported (a TLS connection's context): the real class from now on
print(type(sys.modules["ssl"]).__name__, be.ssl.SSLSocket is sys.modules["ssl"].SSLSocket)
wrapped = context.wrap_socket(socket.socket(), server_hostname="localhost", do_handshake_on_connect=False)
wrapped.setblocking(False)
try:
    loop.run_until_complete(loop.sock_connect(wrapped, address))
except TypeError as exc:  # asyncio's own check, as without the view
    print("refused:", exc)
wrapped.close()
loop.close()
"""


def test_asyncio_connects_without_importing_ssl_and_refuses_an_ssl_socket_once_it_is_imported():
    # the ingestion's event loop: its connections' check of the socket (isinstance ssl.SSLSocket) reads a view
    assert script_output(ASYNCIO_CONNECTS_WITHOUT_SSL) == [
        "InstanceCheckView ImportedOnUse",
        "connected: ImportedOnUse False",
        "module True",
        "refused: Socket cannot be of type SSLSocket",
    ]
