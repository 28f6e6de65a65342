"""Browsing results: tables from real quick runs, round-trips, damage, figures, export."""

import io
import shutil

import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from maitsearch.cli import app
from maitsearch.cli.render import machine_frame
from maitsearch.runs.reading import RUN_DTYPES, TRIAL_DTYPES, list_runs, load_run
from maitsearch.spec import load_spec

runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return result


def test_run_list_is_built_from_the_real_runs(quick_results):
    root, summaries = quick_results
    frame = list_runs(root)
    ours = frame[frame["name"].str.startswith("quick-")].set_index("name")
    assert set(ours.index) >= {"quick-als", "quick-optuna", "quick-soft"}
    assert ours.loc["quick-als", "strategy"] == "als" and ours.loc["quick-optuna", "dataset"] == "digits"
    assert ours.loc["quick-als", "trials"] == len(summaries["als"].records)
    assert ours.loc["quick-optuna", "status"] == "ok"
    run = load_run(root / "quick-als")
    assert repr(run) == (f"<Run quick-als: als, {run.config['layers']}x{run.config['heads']} on digits, "
                         f"{len(run.records)} trials, best {run.best.label()}; ok>")
    table = cli("results", "--results", root, "--strategy", "als").stdout
    assert "quick-als" in table and "quick-optuna" not in table
    typo = runner.invoke(app, ["results", "--results", str(root), "--strategy", "ALS"])
    assert typo.exit_code == 2 and typo.stderr.startswith(f"error: --strategy: no run in {root} has 'ALS'; "
                                                          "they have als, ")


def test_a_list_without_runs_says_so_in_one_line(tmp_path):
    (tmp_path / "empty" / "train" / "mait_tiny_patch16_224-sch2").mkdir(parents=True)  # train's, not a run
    for folder, says in (("empty", "empty"), ("missing", "missing (no such folder)")):
        shown = cli("results", "--results", tmp_path / folder, "--strategy", "als").stdout
        assert shown == f"no runs in {tmp_path / says}; maitsearch run --config quick starts one\n"
    header = cli("results", "--results", tmp_path / "missing", "--format", "csv").stdout
    assert header.startswith("name,strategy,dataset,"), "a script still gets the columns of the empty list"


def test_trials_table_matches_the_run(quick_results):
    root, summaries = quick_results
    run = load_run(root / "quick-als")
    assert list(run.trials["number"]) == [r.number for r in summaries["als"].records]
    assert run.best is not None and run.best.masks == summaries["als"].best.spec.masks
    output = cli("results", "quick-als", "--results", root).stdout
    assert "ALS, trial" in output and "placement" in output
    by_folder = cli("results", root / "quick-als", "--results", root / "no-such-folder").stdout
    assert by_folder == output, "a run named by its folder is read from there, whatever --results says"


@pytest.mark.parametrize("listing", [False, True])
def test_csv_and_json_round_trip_with_dtypes(quick_results, listing):
    root, _ = quick_results
    args = ["results", "--results", root] + ([] if listing else ["quick-optuna"])
    dtypes = {k: v for k, v in (RUN_DTYPES if listing else TRIAL_DTYPES).items() if k != "bars"}
    frame = list_runs(root) if listing else load_run(root / "quick-optuna").trials
    expected = machine_frame(frame)  # fractions rounded to 6 decimals, no display-only sparkline
    assert "bars" not in expected.columns and len(expected.columns) == len(dtypes)
    from_csv = pd.read_csv(io.StringIO(cli(*args, "--format", "csv").stdout), dtype=dtypes, keep_default_na=True)
    pd.testing.assert_frame_equal(from_csv, expected, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(from_csv, frame.drop(columns="bars", errors="ignore"), check_exact=False,
                                  atol=1e-6)  # and within rounding of the unrounded data
    from_json = pd.read_json(io.StringIO(cli(*args, "--format", "json").stdout), orient="table")
    assert dict(from_json.dtypes.astype(str)) == dict(expected.dtypes.astype(str))
    pd.testing.assert_frame_equal(from_json, expected, check_exact=False, rtol=1e-9)
    markdown = cli(*args, "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| ") and len(markdown) == len(expected) + 2
    top1 = "best_top1" if listing else "top1"
    header = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    assert f"{top1}_pct" in header and top1 not in header, "markdown is for people: percent, named so"
    value = frame[top1].dropna().iloc[0]
    assert f"{value * 100:.2f}".rstrip("0").rstrip(".") in "\n".join(markdown)


def test_damaged_folders_are_listed_with_what_is_wrong(quick_results, tmp_path):
    root, _ = quick_results
    for name in ("truncated", "no-csv"):
        shutil.copytree(root / "quick-als", tmp_path / name)
    trial = tmp_path / "truncated" / "trials" / "0.yaml"
    trial.write_text(trial.read_text()[:40])
    (tmp_path / "no-csv" / "trials.csv").unlink()
    (tmp_path / "holiday-photos").mkdir()
    (tmp_path / "holiday-photos" / "beach.jpg").write_bytes(b"\xff\xd8")
    statuses = list_runs(tmp_path).set_index("name")["status"]
    assert statuses["truncated"] == "damaged: 1 unreadable file(s)"
    assert statuses["no-csv"] == "incomplete: no trials.csv"
    assert statuses["holiday-photos"] == "not a run: no search.yaml"
    listing = cli("results", "--results", tmp_path).stdout
    assert "damaged" in listing and "not a run" in listing
    shown = runner.invoke(app, ["results", "truncated", "--results", str(tmp_path)])
    assert shown.exit_code == 0 and "warning: " in shown.stderr and "0.yaml" in shown.stderr


@pytest.mark.slow
def test_every_figure_is_a_real_image(quick_results, tmp_path):
    root, _ = quick_results
    made = {}
    for run_name in ("quick-als", "quick-optuna"):
        copy = tmp_path / run_name
        shutil.copytree(root / run_name, copy)
        figures = load_run(copy).plot_all()
        made.update({f"{run_name}/{k}": v for k, v in figures.items() if not isinstance(v, str)})
    expected = {"quick-als/als", "quick-als/placement", "quick-als/accuracy", "quick-als/similarity",
                "quick-optuna/pareto"}
    assert expected <= set(made)
    for name, path in made.items():
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width >= 300 and image.height >= 200, name
        assert path.stat().st_size > 10_000, name


@pytest.mark.slow
def test_plot_flag_embeds_figures_in_the_report(quick_results, tmp_path):
    root, _ = quick_results
    shutil.copytree(root / "quick-als", tmp_path / "quick-als")
    output = cli("results", "quick-als", "--results", tmp_path, "--plot").stdout
    assert "accuracy: " in output and "similarity: " in output
    report = (tmp_path / "quick-als" / "report.md").read_text()
    for name in ("als", "placement", "accuracy", "similarity"):
        assert f"]({name}.png)" in report


def test_export_and_spec_show(quick_results, tmp_path):
    root, summaries = quick_results
    out = tmp_path / "best.yaml"
    cli("export", "quick-als", "--results", root, "-o", out)
    assert load_spec(out).masks == summaries["als"].best.spec.masks
    first = summaries["als"].records[0]
    cli("export", "quick-als", "--trial", first.number, "--results", root, "-o", tmp_path / "t.yaml")
    assert load_spec(tmp_path / "t.yaml").meta["trial"] == first.number
    shown = cli("spec", "show", out).stdout
    assert "placement" in shown and "layers x heads" in shown
    missing = runner.invoke(app, ["export", "quick-als", "--trial", "99", "--results", str(root), "-o", str(out)])
    assert missing.exit_code == 2 and "no trial 99" in missing.stderr


def test_comparing_runs_warns_when_they_differ(quick_results):
    root, _ = quick_results
    result = cli("results", "quick-als", "quick-optuna", "--results", root)
    assert "quick-als" in result.stdout and "quick-optuna" in result.stdout
    assert "warning" not in result.stderr  # same data, proxy and seeds
    frame = pd.read_json(io.StringIO(cli("results", "quick-als", "quick-soft", "--results", root, "--format",
                                         "json").stdout), orient="table")
    assert list(frame["name"]) == ["quick-als", "quick-soft"]


def test_comparison_warnings_name_the_difference(quick_results, tmp_path):
    root, _ = quick_results
    shutil.copytree(root / "quick-als", tmp_path / "other")
    config = tmp_path / "other" / "search.yaml"
    data = yaml.safe_load(config.read_text())
    data["proxy"]["epochs"] += 2
    config.write_text(yaml.safe_dump(data))
    shutil.copytree(root / "quick-als", tmp_path / "quick-als")
    result = runner.invoke(app, ["results", "quick-als", "other", "--results", str(tmp_path)])
    assert result.exit_code == 0 and "differ in proxy.epochs" in result.stderr

    # a run written before proxy.train_copies existed trained one copy, as its default does now
    data["proxy"]["epochs"] -= 2
    del data["proxy"]["train_copies"]
    config.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["results", "quick-als", "other", "--results", str(tmp_path)])
    assert result.exit_code == 0 and "differ" not in result.stderr, result.stderr


def test_python_api_load_run(quick_results, tmp_path):
    import maitsearch

    root, summaries = quick_results
    run = maitsearch.load_run(root / "quick-soft")
    assert run.config["strategy"] == "soft" and len(run.trials) == len(summaries["soft"].records)
    assert run.best is not None and run.best.key() == summaries["soft"].best.spec.key()
    figure = run.plot_als(tmp_path / "als.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "a PNG was drawn"


def test_labels_of_a_tight_cluster_of_points_stay_apart_and_inside_the_frame():
    """A transfer study's good placements sit within a tenth of a point of each other: their
    labels must not print over each other, the markers, or the frame's edge."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from maitsearch.runs import plots

    x = [94.7, 94.72, 96.21, 96.28, 96.29, 96.43, 96.55, 96.27]
    y = [97.03, 96.68, 97.66, 97.69, 97.55, 97.82, 97.55, 97.0]
    labels = ["none", "random", "default-soft/best", "default-l24h3/best", "sch2", "all", "a-longer-label", "sch1"]
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.plot(x, y, "o")
    ax.margins(0.08)
    plots._label_points(ax, x, y, labels)
    renderer = fig.canvas.get_renderer()

    def words(annotation):  # an Annotation's own extent also spans the line that leads a far label back
        annotation.update_positions(renderer)
        return Text.get_window_extent(annotation, renderer)

    boxes = {text.get_text(): words(text) for text in ax.texts}
    frame = ax.get_window_extent(renderer).frozen()  # closing the figure resets its dpi
    markers = ax.transData.transform(list(zip(x, y)))
    plt.close(fig)
    assert sorted(boxes) == sorted(labels)
    names = list(boxes)
    for i, first in enumerate(names):
        box = boxes[first]
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, first
        for second in names[i + 1:]:
            assert not box.overlaps(boxes[second]), (first, second)
        assert not any(box.contains(px, py) for px, py in markers), first


def test_accuracy_points_are_named_by_step_numbered_where_a_step_repeats():
    """A supernet retrains its top candidates in the order it ranked them: the figure numbers
    them in trial order, and one that is a preset keeps its name; a short
    sampled placement shows its compact form, a long one (24 layers) nothing, and a preset
    Optuna enqueued its name."""
    from maitsearch.runs.reading import _point_labels
    from maitsearch.runs.record import TrialRecord
    from maitsearch.spec import MaskSpec, preset

    def record(number, step, spec):
        return TrialRecord(number, step, spec, seeds=[0], val_top1=[0.9])

    records = [record(0, "baseline", preset("none", 2, 3)),
               record(1, "candidate", MaskSpec.from_compact("70", heads=3)),
               record(2, "candidate", preset("all", 2, 3)),
               record(3, "candidate", MaskSpec.from_compact("31", heads=3)),
               record(4, "optuna", MaskSpec.from_compact("71", heads=3)),
               record(5, "optuna", MaskSpec.from_compact("7" * 24, heads=3)),
               record(6, "optuna", preset("sch1", 2, 3))]
    assert _point_labels(records) == ["baseline none", "candidate 1", "candidate all", "candidate 2", "71",
                                      "", "optuna sch1"]


def test_report_names_baselines_and_its_reproduce_command_resumes(quick_results, tmp_path):
    import shlex

    root, _ = quick_results
    shutil.copytree(root / "quick-als", tmp_path / "quick-als")
    report = (tmp_path / "quick-als" / "report.md").read_text()
    assert "| baseline sch1 |" in report and "| baseline none |" in report
    # none, Sch.1 and the assign step trained; init repeats Sch.1 and calibrate repeats assign
    provenance = "trials: 5 (3 trained, 0 from the trial cache, 2 reused)"
    assert provenance in report
    command = next(line for line in report.splitlines() if line.startswith("- reproduce: "))
    # The command names the folder it was written in; the copy is where this test may write.
    args = shlex.split(command.removeprefix("- reproduce: ").strip("`").replace(str(root), str(tmp_path)))
    assert args[:2] == ["maitsearch", "run"]
    cli(*args[1:])
    assert provenance in (tmp_path / "quick-als" / "report.md").read_text(), "a resume trains nothing, says the same"


@pytest.mark.slow
def test_a_calibration_keeps_its_configs_seeds_and_its_reproduce_command_resumes(tmp_path):
    import shlex

    import yaml

    from maitsearch.config import resolve_config_path

    config = yaml.safe_load(resolve_config_path("quick").read_text())
    config.update(layers=2, seeds=2)
    config["proxy"].update(epochs=1)
    path = tmp_path / "two-seeds.yaml"
    path.write_text(yaml.safe_dump(config))
    results = tmp_path / "results"
    cli("calibrate", "--config", path, "--name", "cal", "--results", results)
    calibration = yaml.safe_load((results / "cal" / "calibration.yaml").read_text())
    assert calibration["seeds"] == [0, 1] and len(calibration["placements"]["none"]["1x"]["values"]) == 2
    report = (results / "cal" / "report.md").read_text()
    command = next(line for line in report.splitlines() if line.startswith("- reproduce: "))
    args = shlex.split(command.removeprefix("- reproduce: ").strip("`"))
    assert args[:2] == ["maitsearch", "calibrate"] and "--seeds" not in args
    provenance = next(line for line in report.splitlines() if line.startswith("- seeds per placement: "))
    cli(*args[1:])
    assert provenance in (results / "cal" / "report.md").read_text().splitlines()


@pytest.mark.slow
def test_a_trials_own_figures(quick_results, tmp_path):
    root, summaries = quick_results
    shutil.copytree(root / "quick-als", tmp_path / "quick-als")
    sch1 = next(r for r in summaries["als"].records if r.spec.meta.get("preset") == "sch1")
    cli("results", "quick-als", "--results", tmp_path, "--plot")
    output = cli("results", "quick-als", "--results", tmp_path, "--plot", "--trial", sch1.number).stdout
    assert f"ALS, trial {sch1.number}" in output
    for name in (f"als-trial{sch1.number}", f"similarity-trial{sch1.number}"):
        path = tmp_path / "quick-als" / f"{name}.png"
        with Image.open(path) as image:
            assert image.size[0] > 300 and path.stat().st_size > 10_000, name
    report = (tmp_path / "quick-als" / "report.md").read_text()
    for name in ("als", "accuracy", "similarity", f"als-trial{sch1.number}", f"similarity-trial{sch1.number}"):
        assert f"]({name}.png)" in report, name  # the trial's figures join the run's, not replace them
    assert f"ALS per head of trial {sch1.number}" in report
    missing = runner.invoke(app, ["results", "quick-als", "--results", str(tmp_path), "--trial", "99"])
    assert missing.exit_code == 2 and missing.stderr.strip() == "error: run quick-als has no trial 99"


def test_a_presets_run_compares_every_placement_with_the_baseline(quick_results):
    """A presets run has no answer of its own: its report and the terminal view judge each
    retrained placement against the unmasked baseline, seed by seed."""
    root, summaries = quick_results
    records = summaries["presets"].records
    report = (root / "quick-presets" / "report.md").read_text()
    best = summaries["presets"].best
    others = [r for r in records if r.label != "none" and r.number != best.number]
    assert others, "the fixture trains placements besides none and best"
    for record in others:
        assert f"- {record.label} (trial {record.number}) " in report
        assert f"vs unmasked baseline (trial {records[0].number})" in report
    assert load_run(root / "quick-presets").comparisons() == [
        line.removeprefix("- ") for line in report.split("## Answer against the baselines\n\n")[1].split("\n\n")[0].splitlines()]


def test_an_answer_that_is_best_yaml_is_compared_with_each_baseline_once():
    from maitsearch.runs import TrialRecord
    from maitsearch.runs.report import comparisons
    from maitsearch.spec import MaskSpec, preset

    seeds = [0, 1]
    none = TrialRecord(0, "baseline", preset("none", 2, 2), seeds=seeds, val_top1=[0.90, 0.92])
    sch1 = TrialRecord(1, "baseline", preset("sch1", 2, 2), seeds=seeds, val_top1=[0.91, 0.91])
    derived = TrialRecord(2, "derived", MaskSpec.from_compact("31", heads=2), seeds=seeds, val_top1=[0.93, 0.95])
    lines = comparisons([none, sch1, derived], derived, derived, None, strategy="soft")
    assert [line.split(" validation")[0] for line in lines] == [
        "best.yaml is trial 2 (derived, `31`): the most accurate placement this run measured with all its seeds.",
        "best (trial 2) 94.00 ± 1.41 vs unmasked baseline (trial 0) 91.00 ± 1.41",
        "the strategy's own answer is trial 2 (derived, `31`); it is best.yaml.",
        "the strategy's answer (trial 2) 94.00 ± 1.41 vs Sch.1 (trial 1) 91.00 ± 0.00"]


def test_a_comparison_shows_its_own_seeds_spread_beside_the_calibrations(tmp_path):
    """Hand-worked: differences +1, +2, 0 points have mean 1.00 and std 1.00, so three seeds
    resolve 2 * 1.00 / sqrt(3) = 1.15; a calibration's paired noise of 0.50 resolves 0.58. The
    verdict is the calibration's; the comparison's own spread is shown beside it."""
    from maitsearch.runs import TrialRecord
    from maitsearch.runs.report import comparison_line
    from maitsearch.spec import preset

    seeds = [0, 1, 2]
    none = TrialRecord(0, "baseline", preset("none", 2, 2), seeds=seeds, val_top1=[0.90, 0.91, 0.92])
    sch1 = TrialRecord(1, "init", preset("sch1", 2, 2), seeds=seeds, val_top1=[0.91, 0.93, 0.92])
    calibration = {"paired_noise": 0.005, "path": str(tmp_path / "calibration.yaml")}
    line = comparison_line(sch1, none, calibration)
    assert "+1.00 points over 3 paired seed(s), a gain beyond the measured seed noise" in line, line
    assert line.endswith("(resolvable gap 0.58 points, noise from the calibration in "
                         f"{tmp_path / 'calibration.yaml'}; by its own 3 seeds' spread (1.00) the gap is "
                         "1.15, within).")
    uncalibrated = comparison_line(sch1, none, None)
    assert uncalibrated.endswith("within the measured seed noise (resolvable gap 1.15 points, noise from "
                                 "this run's paired seeds).")


def test_the_calibration_table_says_what_its_rank_stability_compares():
    from maitsearch.cli.render import calibration_table

    def caption(budgets, tau):
        cells = {f"{b}x": {"mean": 0.9, "std": 0.01} for b in budgets}
        result = {"budgets": budgets, "seeds": [0, 1, 2], "kendall_tau": tau,
                  "placements": {"none": cells, "sch1": cells}, "by_budget": {}}
        return calibration_table(result).caption

    assert caption([1], None) == "rank stability: one budget, nothing to compare (--budgets 1,3 measures it)"
    assert caption([1, 3], 1 / 3) == "rank stability: Kendall's tau +0.33 between the shortest and the longest budget"
    assert caption([1, 3], None) == "rank stability: no ranking to compare (every placement tied)"
    stats = {"epochs": 3, "noise": 0.1665, "paired_noise": 0.0121, "paired_resolvable_gap": 0.014,
             "seconds_per_trial": 3.8}
    result = {"budgets": [1], "seeds": [0, 1, 2], "kendall_tau": None, "by_budget": {"1x": stats},
              "placements": {"none": {"1x": {"mean": 0.9, "std": 0.01}}}}
    assert calibration_table(result).caption.splitlines()[1] == (
        "3 ep: noise 16.65 (paired 1.21), resolvable paired gap 1.40, 4 s per trained seed")


def _training_folder(root, name="train/t"):
    """What `maitsearch train` leaves after 2 of 3 epochs, with one line torn (not through train: the
    reader is what is tested, and the files are the contract)."""
    from maitsearch.spec import preset

    folder = root / name
    folder.mkdir(parents=True)
    preset("sch1", 2, 3).save(folder / "spec.yaml")
    (folder / "config.yaml").write_text("model: mait_tiny_patch16_224\nrecipe: deit\ndata: digits\nepochs: 3\n")
    (folder / "metrics.jsonl").write_text('{"epoch": 0, "val_top1": 0.7, "val_loss": 1.0}\n{"epoch": 1, "val_to\n'
                                          '{"epoch": 1, "val_top1": 0.6, "val_loss": 1.2}\n')
    (folder / "checkpoint.pt").write_bytes(b"")
    return folder


def test_a_training_folder_shows_its_epochs_and_what_comes_next_not_a_broken_run(tmp_path):
    folder = _training_folder(tmp_path)
    shown = runner.invoke(app, ["results", "train/t", "--results", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "2 of 3 done; val top-1 60.00% at the last, 70.00% at the best (epoch 1)" in shown.stdout
    rows = [line.split("│")[1:-1] for line in shown.stdout.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == [["1", "70.00", "1.0000"], ["2", "60.00", "1.2000"]]
    assert f"maitsearch train -c {folder / 'config.yaml'} --out {folder} --resume" in shown.stdout
    assert shown.stderr.strip() == f"warning: {folder / 'metrics.jsonl'}:2: not a JSON line; skipped"
    as_csv = runner.invoke(app, ["results", str(folder), "-f", "csv"])
    assert pd.read_csv(io.StringIO(as_csv.stdout)).to_dict("list") == {
        "epoch": [0, 1], "val_top1": [0.7, 0.6], "val_loss": [1.0, 1.2]}
    plot = runner.invoke(app, ["results", str(folder), "--plot"])
    assert plot.exit_code == 2 and "is a training (maitsearch train), not a search run" in plot.stderr
    exported = runner.invoke(app, ["export", str(folder), "-o", str(tmp_path / "s.yaml")])
    assert exported.exit_code == 0, exported.output
    assert load_spec(tmp_path / "s.yaml") == load_spec(folder / "spec.yaml")


def test_the_trainings_folder_lists_its_trainings_under_their_results_names(tmp_path):
    _training_folder(tmp_path, "train/t")
    (tmp_path / "train" / "started").mkdir()  # nothing trained yet: not a training to list
    listed = list_runs(tmp_path)
    assert listed["name"].tolist() == ["train/t"] and listed["strategy"].tolist() == ["train"]
    shown = runner.invoke(app, ["results", listed["name"][0], "--results", str(tmp_path)])
    assert shown.exit_code == 0 and "2 of 3 done" in shown.stdout


def test_a_training_folder_among_runs_is_listed_as_one(tmp_path):
    folder = _training_folder(tmp_path, "mine")
    assert list_runs(tmp_path)["status"].tolist() == ["damaged: a training with 1 unreadable part(s)"]
    (folder / "metrics.jsonl").write_text('{"epoch": 0, "val_top1": 0.7, "val_loss": 1.0}\n')
    listed = list_runs(tmp_path)
    assert listed["status"].tolist() == ["ok: a training, not a search run"]
    assert repr(load_run(folder)) == "<Run mine: train, 2x3 on digits, 0 trials; ok: a training, not a search run>"
    assert repr(load_run(tmp_path / "gone")) == "<Run gone: ?, ?x? on ?, 0 trials; missing: no such folder>"
    row = listed.iloc[0]  # what the training's own files say, not question marks
    assert (row["strategy"], row["dataset"], row["shape"], row["best_top1"]) == ("train", "digits", "2x3", 0.7)
    assert pd.isna(row["seconds"])
    shown = runner.invoke(app, ["results", "--results", str(tmp_path), "-f", "csv"])
    assert shown.exit_code == 0 and pd.read_csv(io.StringIO(shown.stdout))["strategy"].tolist() == ["train"]
    table = runner.invoke(app, ["results", "--results", str(tmp_path)], env={"COLUMNS": "200"})
    cells = [cell.strip() for cell in next(line for line in table.stdout.splitlines() if "mine" in line).split("│")]
    assert table.exit_code == 0 and cells[1:5] == ["mine", "train", "digits", "2x3"] and cells[9] == "-"
