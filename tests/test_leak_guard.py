"""The repository's test rules proved on tests that break them on purpose: the leak guard
(tests/leak_guard.py) fails an item that leaves a tagged process, a listener, a runtime
directory or a shared-memory segment behind, and passes clean items and environments held by
a module fixture; strict mode (tests/strict_mode.py) turns a runtime skip into a failure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

LEAKY = '''
import ctypes, ctypes.util, os, socket, subprocess, sys, time
from pathlib import Path
import pytest, redis
from shakedown import Environment
from shakedown.waits import eventually

REDIS = '[services.cache]\\nkind = "redis"\\n'

def topology(tmp_path):
    path = tmp_path / "shakedown.toml"
    path.write_text(REDIS)
    return path

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with Environment.from_file(topology(tmp_path_factory.mktemp("m"))) as env:
        yield env

def test_clean_environment(tmp_path):
    with Environment.from_file(topology(tmp_path)) as env:
        assert redis.Redis.from_url(env["cache"].url).ping()

def test_module_environment_restarted(shared):
    shared.faults.restart("cache")  # new processes of a held environment: not a leak
    assert redis.Redis.from_url(shared["cache"].url).ping()

def test_module_environment_again(shared):
    assert redis.Redis.from_url(shared["cache"].url).ping()

def test_leaks_an_environment(tmp_path):
    env = Environment.from_file(topology(tmp_path)).up()  # never taken down
    print("LEAKED", env.env_id)

def test_leaks_a_listening_process():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eventually(lambda: socket.create_connection(("127.0.0.1", port)).close() or True)

def test_leaks_a_listener_of_its_own():
    sock = socket.create_server(("127.0.0.1", 0))
    sock.listen()
    test_leaks_a_listener_of_its_own.sock = sock  # kept open past the test

def test_leaks_a_runtime_directory():
    (Path(os.environ["SHAKEDOWN_RUNTIME_DIR"]) / "default-0000dead").mkdir()

POSIX = ("import mmap, os, sys, time; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR);"
         " os.ftruncate(fd, 4096); segment = mmap.mmap(fd, 4096); time.sleep(0.5)")

def test_leaks_a_posix_segment():  # mapped, then left (shm_open without shm_unlink)
    subprocess.run([sys.executable, "-c", POSIX, f"/dev/shm/leak-guard-test-{os.getpid()}"],
                   check=True)

SYSV = ("import ctypes, ctypes.util, time; libc = ctypes.CDLL(ctypes.util.find_library('c'));"
        " assert libc.shmget(0, 4096, 0o1600) >= 0; time.sleep(0.5)")

def test_leaks_a_sysv_segment():
    subprocess.run([sys.executable, "-c", SYSV], check=True)  # IPC_PRIVATE, IPC_CREAT
'''


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.delenv("CI", raising=False)
    return pytester


def test_the_guard_fails_each_leak_and_passes_what_is_held(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_leaky=LEAKY)
    result = inner.runpytest_subprocess("-p", "leak_guard", "-p", "no:cacheprovider", "-s")
    out = result.stdout.str()
    leaky = ["test_leaks_an_environment", "test_leaks_a_listening_process",
             "test_leaks_a_listener_of_its_own", "test_leaks_a_runtime_directory",
             "test_leaks_a_posix_segment", "test_leaks_a_sysv_segment"]
    # Each leaking test passed its body and errors at teardown; the others are clean.
    result.assert_outcomes(passed=9, errors=len(leaky))
    errored = {line.split("::")[1].split()[0] for line in out.splitlines()
               if line.startswith("ERROR test_leaky.py::")}
    assert errored == set(leaky), out
    env_id = re.search(r"LEAKED (\S+)", out).group(1)  # type: ignore[union-attr]
    for expected in (f"(tag {env_id}): /usr/bin/redis-server", "listener on port",
                     "http.server", "runtime directory entry", "default-0000dead",
                     "shared-memory segment /dev/shm/leak-guard-test-",
                     "System V shared-memory segment"):
        assert expected in out, f"{expected!r} not reported:\n{out}"
    assert out.count("leak guard: the test left behind") == len(leaky)
    # What it found, it removed: nothing of the inner run is left for this test's own guard.
    assert not list(Path("/dev/shm").glob("leak-guard-test-*"))


STRICT = '''
import pytest

def test_cannot_run():
    pytest.skip("the server is not installed")

@pytest.fixture
def needs_server():
    pytest.skip("no server for the fixture")

def test_fixture_cannot_run(needs_server):
    pass

def test_importorskip():
    pytest.importorskip("a_module_that_is_not_installed")

@pytest.mark.skip(reason="a decision, not an accident")
def test_marked():
    pass
'''


def test_strict_mode_turns_runtime_skips_into_failures(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_strict=STRICT)
    loose = inner.runpytest_subprocess("-p", "strict_mode", "-p", "no:cacheprovider")
    loose.assert_outcomes(skipped=4)
    strict = inner.runpytest_subprocess("-p", "strict_mode", "-p", "no:cacheprovider",
                                        "--shakedown-strict", "-rA")
    strict.assert_outcomes(failed=2, errors=1, skipped=1)
    out = strict.stdout.str()
    for reason in ("the server is not installed", "no server for the fixture",
                   "a_module_that_is_not_installed"):
        assert f"strict mode: a test that cannot run is a failure, not a skip: {reason}" in out \
            or f"not a skip: could not import '{reason}'" in out, out
    assert "SKIPPED [1] test_strict.py:16: a decision, not an accident" in out
    inner.makeini("[pytest]\nshakedown_strict = true\n")  # as this repository's pyproject
    from_ini = inner.runpytest_subprocess("-p", "strict_mode", "-p", "no:cacheprovider")
    from_ini.assert_outcomes(failed=2, errors=1, skipped=1)
