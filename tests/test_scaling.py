"""results/scaling.py, the scaling view, on hand-made transfer studies with hand-worked gaps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scaling(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("results_scaling", ROOT / "results" / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "results_scaling", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "FIGURE", tmp_path / "scaling.png")
    monkeypatch.setattr(module, "base_train_images", lambda data: {"digits-shift": 539}[data])
    return module


def _study(folder: Path, copies: int, proxy: dict, target: dict) -> None:
    masked = {"none": 0, "sch2": 28, "all": 72}
    rows = [{"placement": name, "masked": masked[name], "proxy": {"values": proxy[name]},
             "target": {"values": target[name]}} for name in proxy]
    folder.mkdir()
    (folder / "transfer.yaml").write_text(yaml.safe_dump({
        "proxy": {"data": "digits-shift", "train_copies": 1},
        "target": {"data": "digits-shift", "train_copies": copies}, "placements": rows}))


SMALL = {"none": [0.90, 0.92], "sch2": [0.93, 0.94], "all": [0.95, 0.95]}
MIDDLE = {"none": [0.95, 0.95], "sch2": [0.97, 0.98], "all": [0.96, 0.96]}
LARGE = {"none": [0.97, 0.97], "sch2": [0.99, 0.99], "all": [0.98, 0.96]}


def test_each_size_reads_its_best_placement_and_the_paired_sch2_minus_all_gap(scaling, tmp_path):
    _study(tmp_path / "transfer-data-x3", 3, SMALL, MIDDLE)
    # the proxy side again, trained elsewhere: the first study's measurement of it is kept
    _study(tmp_path / "transfer-data", 10, {name: [v - 0.01 for v in values] for name, values in SMALL.items()}, LARGE)
    rows = scaling.scaling_rows()
    assert [(r["images"], r["where"], r["best"], r["best_masked"]) for r in rows] == [
        (539, "transfer-data-x3/proxy", "all", 72), (1617, "transfer-data-x3/target", "sch2", 28),
        (5390, "transfer-data/target", "sch2", 28)]
    # per seed, sch2 - all: (93-95, 94-95) = (-2, -1); (97-96, 98-96) = (1, 2); (99-98, 99-96) = (1, 3)
    expected = [(-1.5, 0.5 ** 0.5), (1.5, 0.5 ** 0.5), (2.0, 2 ** 0.5)]
    for row, (mean, std) in zip(rows, expected):
        assert row["sch2_minus_all"] == pytest.approx((mean, std))
    assert rows[0]["gaps_to_none"]["all"] == pytest.approx((4.0, 2 ** 0.5))  # (95-90, 95-92)
    assert scaling.draw(rows).stat().st_size > 0
    page = "\n".join(scaling.section())
    assert "| 1617 | transfer-data-x3/target | sch2 | 28 | +1.50 ± 0.71 |" in page and "![scaling](scaling.png)" in page


def test_with_one_study_missing_the_page_says_what_is_measured(scaling, tmp_path):
    assert "(not measured yet" in "\n".join(scaling.section())
    _study(tmp_path / "transfer-data-x3", 3, SMALL, MIDDLE)
    assert len(scaling.scaling_rows()) == 2 and scaling.draw(scaling.scaling_rows()) is not None
    assert scaling.draw(scaling.scaling_rows()[:1]) is None
