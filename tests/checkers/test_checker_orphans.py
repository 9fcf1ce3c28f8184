"""no_orphans against real processes carrying the environment tag."""

import os
import subprocess
import uuid

from shakedown.checkers import ENV_TAG, no_orphans


def test_a_tagged_process_is_an_orphan_until_it_ends() -> None:
    env_id = f"test-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(["sleep", "30"], env={**os.environ, ENV_TAG: env_id})
    try:
        result = no_orphans(env_id)
        assert result.validity == "invalid"
        assert f"pid {child.pid}: sleep 30" in result.explanation
        assert result.counts["orphans"] == 1
    finally:
        child.kill()
        child.wait(5)
    assert no_orphans(env_id).validity == "valid"


def test_another_environment_is_not_an_orphan() -> None:
    child = subprocess.Popen(["sleep", "30"], env={**os.environ, ENV_TAG: "other"})
    try:
        assert no_orphans(f"test-{uuid.uuid4().hex[:8]}").validity == "valid"
    finally:
        child.kill()
        child.wait(5)
