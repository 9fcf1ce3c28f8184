"""The pytest plugin, run with pytester in subprocesses against real servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shakedown.process import tagged_processes
from shakedown.waits import EventuallyTimeout, eventually

TOPOLOGY = """
[services.db]
kind = "postgres"
init = ["schema.sql"]

[targets]
"db.ready" = "< 30s"
"quick" = "< 500ms"
"""
SCHEMA = "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", shakedown=TOPOLOGY)
    (pytester.path / "schema.sql").write_text(SCHEMA)
    return pytester


def env_ids(result: pytest.RunResult) -> list[str]:
    return re.findall(r"ENV (\S+)", result.stdout.str())


def results_of(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    runs = sorted((pytester.path / ".shakedown" / "runs").glob("*/results.json"))
    assert runs, "results.json was not written"
    return json.loads(runs[-1].read_text())  # type: ignore[no-any-return]


def test_fresh_database_per_test_and_dropped_after(project: pytest.Pytester) -> None:
    project.makepyfile(test_db="""
        import psycopg
        from shakedown import eventually
        SEEN = []

        def test_one(shakedown_env):
            db = shakedown_env["db"].fresh_database()
            SEEN.append(db.name)
            with psycopg.connect(db.url, autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
                conn.execute("INSERT INTO items VALUES (3)")

        def test_two_is_isolated_and_first_is_dropped(shakedown_env):
            db = shakedown_env["db"].fresh_database()
            assert db.name != SEEN[0]
            with psycopg.connect(db.url) as conn:
                assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
            def first_dropped():
                with shakedown_env["db"].connect() as conn:
                    names = [r[0] for r in conn.execute("SELECT datname FROM pg_database")]
                return SEEN[0] not in names
            eventually(first_dropped, timeout=5)
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_scopes_from_the_marker(project: pytest.Pytester) -> None:
    for module in ("a", "b"):
        project.makepyfile(**{f"test_{module}": """
            import pytest
            IDS = []
            pytestmark = pytest.mark.shakedown(scope="module")
            def test_1(shakedown_env):
                IDS.append(shakedown_env.env_id)
            def test_2(shakedown_env):
                IDS.append(shakedown_env.env_id)
                assert IDS[0] == IDS[1], "same module, same environment"
                print("ENV", IDS[0])
            """})
    project.makepyfile(test_c="""
        import pytest
        IDS = []
        @pytest.mark.shakedown(scope="function")
        def test_1(shakedown_env):
            IDS.append(shakedown_env.env_id)
        @pytest.mark.shakedown(scope="function")
        def test_2(shakedown_env):
            assert shakedown_env.env_id != IDS[0], "function scope: a new environment"
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=6)
    assert len(set(env_ids(result))) == 2, "one environment per module"


def test_marker_file_selects_another_topology(project: pytest.Pytester) -> None:
    (project.path / "other").mkdir()
    (project.path / "other" / "cache.toml").write_text('[services.cache]\nkind = "redis"\n')
    project.makepyfile(test_other="""
        import pytest, redis
        @pytest.mark.shakedown(file="other/cache.toml")
        def test_cache(shakedown_env):
            assert list(shakedown_env.services) == ["cache"]
            assert redis.Redis.from_url(shakedown_env["cache"].url).ping()
        """)
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_missed_target_fails_the_test_that_measured_it(project: pytest.Pytester) -> None:
    project.makepyfile(test_targets="""
        import time
        def test_slow(shakedown_env):
            with shakedown_env.measure("quick"):
                time.sleep(0.6)  # over the target whatever the machine: a miss
        def test_fast(shakedown_env):
            with shakedown_env.measure("quick"):
                pass
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    # The figures themselves are the machine's; the test checks what is said about them.
    result.stdout.fnmatch_lines(["shakedown: target missed: quick = * ms, target < 500ms",
                                 "*quick < 500ms: worst * ms, MISSED 1 of 2*"])
    tests = {t["nodeid"]: t for t in results_of(project)["tests"]}
    assert tests["test_targets.py::test_slow"]["measurements"]["quick"] >= 0.6
    assert tests["test_targets.py::test_slow"]["outcome"] == "failed"
    assert tests["test_targets.py::test_fast"]["outcome"] == "passed"
    assert "db.ready" in tests["test_targets.py::test_slow"]["measurements"]


MISSING = '[services.db]\nkind = "postgres"\nbin_dir = "/nonexistent/bin"\n'
NEEDS_DB = "def test_needs_db(shakedown_env):\n    pass\n"


def test_missing_binary_is_a_skip_locally(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makefile(".toml", shakedown=MISSING)
    pytester.makepyfile(test_skip=NEEDS_DB)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*postgres not found*apt-get install -y postgresql*"])


@pytest.mark.parametrize("how", ["--shakedown-strict", "CI=true"])
def test_missing_binary_is_an_error_when_strict(pytester: pytest.Pytester,
                                                monkeypatch: pytest.MonkeyPatch,
                                                how: str) -> None:
    args = ["-p", "no:cacheprovider"]
    if how == "CI=true":
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
        args.append(how)
    pytester.makefile(".toml", shakedown=MISSING)
    pytester.makepyfile(test_strict=NEEDS_DB)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*shakedown (strict): postgres not found*"])


def test_failure_gets_log_tails_and_a_copy_of_the_logs(project: pytest.Pytester) -> None:
    project.makepyfile(test_fails="""
        def test_broken(shakedown_env):
            assert shakedown_env["db"].port == -1
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*shakedown: last 50 lines of db's log*",
                                 "*database system is ready to accept connections*",
                                 "*logs of failed tests' environments copied to:*"])
    copies = list((project.path / ".shakedown" / "runs").glob("*/logs/*/db.log"))
    assert copies and "ready to accept connections" in copies[0].read_text()


def test_results_json_and_junit_properties(project: pytest.Pytester) -> None:
    project.makepyfile(test_mixed="""
        import pytest
        def test_ok(shakedown_env):
            with shakedown_env.measure("quick"):
                pass
        def test_bad(shakedown_env):
            assert False
        @pytest.mark.skip(reason="not today")
        def test_skipped(shakedown_env):
            pass
        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")
        def test_error(shakedown_env, broken):
            pass
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*tests: 1 passed, 1 failed, 1 error, 1 skipped*",
                                 "*skipped test_mixed.py::test_skipped: not today*"])
    data = results_of(project)
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in data["tests"]}
    assert outcomes == {"test_ok": "passed", "test_bad": "failed", "test_skipped": "skipped",
                        "test_error": "error"}
    (environment,) = data["environments"]
    (service,) = environment["services"]
    assert service["version"].startswith("PostgreSQL 15")
    assert "***" in service["url"] and service["ready_s"] > 0
    assert data["targets"] == {"db.ready": "< 30s", "quick": "< 500ms"}
    junit = (project.path / "junit.xml").read_text()
    assert 'name="shakedown.measure.quick"' in junit
    assert 'name="shakedown.measure.db.ready"' in junit


def test_xdist_workers_get_their_own_environments(
    project: pytest.Pytester, runtime_root: Path
) -> None:
    project.makepyfile(test_parallel="""
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_n(shakedown_env, n):
            print("ENV", shakedown_env.env_id, shakedown_env["db"].port)
        """)
    # without grouping (which sends tests that share an environment to one worker: test_shard)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                          "--shakedown-no-group")
    result.assert_outcomes(passed=4)
    environments = results_of(project)["environments"]
    assert len(environments) == 2
    assert environments[0]["services"][0]["url"] != environments[1]["services"][0]["url"]
    assert not tagged_processes(root=runtime_root)


def test_reuse_keeps_the_environment_between_runs_and_refuses_a_changed_topology(
    project: pytest.Pytester, runtime_root: Path
) -> None:
    project.makepyfile(test_reuse="""
        def test_env(shakedown_env):
            print("ENV", shakedown_env.env_id)
        """)
    first = project.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--shakedown-reuse")
    second = project.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--shakedown-reuse")
    try:
        first.assert_outcomes(passed=1)
        second.assert_outcomes(passed=1)
        ids = env_ids(first) + env_ids(second)
        assert len(ids) == 2 and ids[0] == ids[1], "the second run reused the environment"
        assert tagged_processes(root=runtime_root), "reuse leaves the environment running"
        (project.path / "shakedown.toml").write_text(TOPOLOGY.replace('"< 30s"', '"< 31s"'))
        third = project.runpytest_subprocess("-p", "no:cacheprovider", "--shakedown-reuse")
        third.assert_outcomes(errors=1)
        third.stdout.fnmatch_lines(["*started from a different topology*",
                                    "*shakedown down --name pytest-reuse*"])
    finally:
        subprocess.run([sys.executable, "-m", "shakedown", "down", "--name", "pytest-reuse"],
                       cwd=project.path, check=False, capture_output=True)
    assert not tagged_processes(root=runtime_root)


def test_keep_leaves_the_environment_running(project: pytest.Pytester,
                                             runtime_root: Path) -> None:
    project.makepyfile(test_keep="def test_env(shakedown_env):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--shakedown-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*environments kept running*"])
    (name,) = [p.name for p in (project.path / ".shakedown" / "envs").iterdir()]
    assert tagged_processes(root=runtime_root)
    down = subprocess.run([sys.executable, "-m", "shakedown", "down", "--name", name],
                          cwd=project.path, capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr
    assert not tagged_processes(root=runtime_root)


def test_eventually_returns_the_value() -> None:
    calls = iter([None, 0, "ready"])
    assert eventually(lambda: next(calls), timeout=1, interval=0.001) == "ready"


def test_eventually_explains_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def never() -> bool:
        raise ConnectionError("still down")

    with pytest.raises(EventuallyTimeout) as info:
        eventually(never, timeout=0.1, interval=0.01)
    message = str(info.value)
    assert "never not true after 0.1" in message and "attempts" in message
    assert "ConnectionError: still down" in message
    monkeypatch.setenv("SHAKEDOWN_TIMEOUT_SCALE", "3")
    with pytest.raises(EventuallyTimeout, match=r"after 0\.3\ds .*x scale 3"):
        eventually(lambda: False, timeout=0.1, interval=0.01)


def test_readme_example_runs(tmp_path: Path) -> None:
    """The plugin example in the README, as written there."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("<!-- plugin-example -->")[1]
    toml = textwrap.dedent(block.split("```toml")[1].split("```")[0])
    test = textwrap.dedent(block.split("```python")[1].split("```")[0])
    (tmp_path / "shakedown.toml").write_text(toml)
    for name, content in (("schema.sql", SCHEMA),):
        (tmp_path / name).write_text(content)
    (tmp_path / "test_example.py").write_text(test)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "--shakedown-strict"],
                            cwd=tmp_path, capture_output=True, text=True, check=False,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    # A skip also exits 0: the example must have run, and passed.
    assert re.search(r"^1 passed in ", result.stdout, re.M), result.stdout


def test_file_from_the_command_line_and_the_ini(pytester: pytest.Pytester) -> None:
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "cache.toml").write_text('[services.cache]\nkind = "redis"\n')
    (pytester.path / "conf" / "db.toml").write_text('[services.db]\nkind = "postgres"\n')
    pytester.makeini("[pytest]\nshakedown_file = conf/cache.toml\n")
    pytester.makepyfile(test_which="""
        def test_services(shakedown_env):
            print("SERVICES", sorted(shakedown_env.services))
        """)
    from_ini = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    from_ini.assert_outcomes(passed=1)
    assert "SERVICES ['cache']" in from_ini.stdout.str()
    from_option = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s",
                                                "--shakedown-file", "conf/db.toml")
    from_option.assert_outcomes(passed=1)
    assert "SERVICES ['db']" in from_option.stdout.str()


def test_no_topology_found_is_an_error_that_says_where_it_looked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_none="def test_x(shakedown_env):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no shakedown.toml for test_none.py::test_x*",
                                 "*--shakedown-file*"])
