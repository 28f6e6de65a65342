"""Start-up time of the CLI: how long a user waits for commands that train nothing.

    python benchmarks/startup.py [--repeats 7] [--pythonpath OTHER_CHECKOUT]

Times ``maitsearch --help``, ``--version``, ``spec check FILE`` and a bare ``import maitsearch``
as whole processes (``python -m maitsearch``), median of the repeats, and says whether torch
was loaded. ``--pythonpath`` times another checkout the same way (for a before/after figure).
Target: under 1 s each. Writes benchmarks/out/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
SPEC = """version: 1
layers: 2
heads: 3
masks: [[0], []]
"""


def timed(command: list[str], env: dict, repeats: int, cwd: str) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pythonpath", help="time the maitsearch found here instead")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "spec.yaml"
        spec.write_text(SPEC)
        cli = [sys.executable, "-m", "maitsearch"]
        commands = {"--help": cli + ["--help"], "--version": cli + ["--version"],
                    "spec check": cli + ["spec", "check", str(spec)],
                    "import maitsearch": [sys.executable, "-c", "import maitsearch"]}
        # -m puts the working folder first on sys.path: run from the temp folder, so that the
        # maitsearch timed is the installed one or the --pythonpath one, never ./maitsearch
        supported = {}
        for name, command in commands.items():  # also warms the file cache
            if subprocess.run(command, env=env, capture_output=True, cwd=folder).returncode == 0:
                supported[name] = command
            else:
                print(f"{name}: not supported by this maitsearch")
        rows = {name: round(timed(command, env, args.repeats, folder), 3) for name, command in supported.items()}
        probe = "import sys, maitsearch.cli; print('torch' in sys.modules)"
        loads_torch = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                     cwd=folder).stdout.strip()
    for name, seconds in rows.items():
        print(f"{name:<20} {seconds:6.3f} s  ({'meets' if seconds < 1.0 else 'misses'} the 1 s target)")
    print(f"the CLI loads torch at start-up: {loads_torch}")
    OUT.mkdir(exist_ok=True)
    name = "startup-other.json" if args.pythonpath else "startup.json"
    (OUT / name).write_text(json.dumps({"seconds": rows, "repeats": args.repeats, "cli_loads_torch": loads_torch,
                                        "pythonpath": args.pythonpath}, indent=1) + "\n")


if __name__ == "__main__":
    main()
