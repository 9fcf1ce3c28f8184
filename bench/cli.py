"""How quickly the CLI answers: ``--version``, ``--help`` and the commands that only read a
running environment (``status``, ``env``, ``logs``), each beside ``python -c pass`` (the
floor: starting the interpreter), measured in the same run and interleaved so that machine
load hits all alike. Target: 150 ms each on this machine (the issue's figure); the ratio to
the floor is printed too, so a slower or busier machine reads the same story.

    .venv/bin/python bench/cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figures, timed, verdict

SHAKEDOWN = [sys.executable, "-m", "shakedown"]
TARGET_S = 0.150


def run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "shakedown.toml").write_text(textwrap.dedent("""
            [services.cache]
            kind = "redis"
            """))
        run([*SHAKEDOWN, "up", "--detach", "--name", "bench"], work)
        try:
            commands = {
                "--version": ["--version"],
                "--help": ["--help"],
                "status": ["status", "--name", "bench"],
                "env": ["env", "--name", "bench"],
                "logs": ["logs", "cache", "--name", "bench", "-n", "5"],
            }
            floor = Figures("python -c pass (floor)", [])
            figures = {name: Figures(f"shakedown {name}", []) for name in commands}
            for _ in range(args.runs):
                floor.samples.append(timed(lambda: run([sys.executable, "-c", "pass"], work)))
                for name, argv in commands.items():
                    figures[name].samples.append(
                        timed(lambda argv=argv: run([*SHAKEDOWN, *argv], work)))
        finally:
            run([*SHAKEDOWN, "down", "--name", "bench"], work)
    print(floor.line())
    for fig in figures.values():
        print(fig.line())
    print()
    for name, fig in figures.items():
        print(verdict(f"shakedown {name}: median seconds", fig.median, TARGET_S))
        print(f"{'':<4}ratio to the floor: {fig.median / floor.median:.1f}x "
              f"(floor {floor.median * 1000:.0f} ms, same run)")


if __name__ == "__main__":
    main()
