"""The package as a user installs it: a wheel, in a fresh virtual environment, with no checkout.

The fresh environment borrows this one's dependencies through a ``.pth`` line (installing torch
again would take minutes), which adds their folder to ``sys.path`` without running the ``.pth``
files in it, so the editable install that points at this checkout stays out of it.
"""

import os
import site
import subprocess
import sys
import zipfile

import pytest

from maitsearch.config import preset_names

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-q", "-w", str(out)])
    (path,) = out.glob("maitsearch-*.whl")
    return path


def test_the_wheel_ships_every_preset_and_the_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.split("/")[-1][:-len(".yaml")] for n in names if n.startswith("maitsearch/presets/"))
    assert shipped == preset_names() and "quick" in shipped
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_quick_run_from_the_wheel_in_an_empty_folder(wheel, tmp_path):
    fresh = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(fresh)])
    python = fresh / "bin" / "python"
    fresh_site = run([str(python), "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip()
    with open(os.path.join(fresh_site, "borrowed-dependencies.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    # with a checkout on PYTHONPATH, pip would find maitsearch installed already and skip the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], env=env)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env.update(OMP_NUM_THREADS="1", MAITSEARCH_CACHE=str(tmp_path / "cache"))
    where = run([str(python), "-c", "import maitsearch; print(maitsearch.__file__)"], cwd=empty, env=env)
    assert where.stdout.startswith(str(fresh)), f"maitsearch came from {where.stdout.strip()}, not the wheel"

    result = run([str(fresh / "bin" / "maitsearch"), "run", "--config", "quick", "--results", "out"],
                 cwd=empty, env=env)
    runs = list((empty / "out").iterdir())
    assert len(runs) == 1 and (runs[0] / "best.yaml").is_file() and (runs[0] / "report.md").is_file()
    assert "best: trial" in result.stdout
