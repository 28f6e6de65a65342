"""MaskSpec: YAML v1 round trips, compact form, canonical form, presets and the malformed corpus."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maitsearch.spec import PRESETS, MaskSpec, SpecError, load_spec, parse_spec, preset

BAD_SPECS = sorted((Path(__file__).parent / "data" / "bad_specs").glob("*.yaml"))


def test_yaml_round_trip_keeps_everything(tmp_path):
    spec = MaskSpec(layers=3, heads=3, masks=[[0, 1], [2], []], window=(3, 5), semantics="local",
                    soft=[[0.0, 0.0, 1.0], [0.25, 1.0, 0.0], [1.0, 0.5, 0.75]],
                    meta={"strategy": "als", "top1": 0.951, "als": [[0.9, 0.4, 0.3]] * 3})
    path = spec.save(tmp_path / "spec.yaml")
    assert load_spec(path) == spec
    assert not list(tmp_path.glob("*.tmp")), "atomic save leaves no temp file"


def test_written_yaml_matches_the_design_schema():
    text = preset("sch2", 24, 3).to_yaml()
    data = yaml.safe_load(text)
    assert list(data) == ["version", "layers", "heads", "window", "semantics", "masks", "soft", "meta"]
    assert data["masks"][0] == [0, 1] and data["masks"][8] == [0] and data["masks"][23] == []
    assert "  - [0, 1]\n" in text, "one flow list per layer"


def test_compact_form_matches_design_example():
    spec = MaskSpec.from_counts([2] * 8 + [1] * 12 + [0] * 4, heads=3)
    assert spec.compact() == "333333331111111111110000"
    assert MaskSpec.from_compact("333333331111111111110000", heads=3) == spec


def test_compact_form_uses_two_digits_for_wide_layers():
    spec = MaskSpec(layers=2, heads=6, masks=[[0, 5], [4]])
    assert spec.compact() == "2110"  # 0b100001 = 0x21, 0b010000 = 0x10
    assert MaskSpec.from_compact("2110", heads=6) == spec


@pytest.mark.parametrize("text", ["", "3g", "8", "33x"])
def test_compact_form_rejects_garbage(text):
    with pytest.raises(ValueError, match="compact"):
        MaskSpec.from_compact(text, heads=3)


def test_canonical_masks_lowest_heads_and_sorts_soft_alphas():
    spec = MaskSpec(layers=2, heads=3, masks=[[2], [1, 2]])
    assert spec.canonical().masks == ((0,), (0, 1))
    assert spec.key() == MaskSpec(layers=2, heads=3, masks=[[0], [0, 2]]).key()
    soft = MaskSpec(layers=1, heads=3, masks=[[1]], soft=[[0.9, 0.0, 0.3]])
    assert soft.canonical().soft == ((0.0, 0.3, 0.9),) and soft.canonical().masks == ((0,),)


def test_key_ignores_meta_but_not_window_or_semantics():
    base = preset("sch1", 4, 3)
    assert base.key() == base.with_meta(top1=0.5).key()
    assert base.key() != preset("sch1", 4, 3, window=(5, 5)).key()
    assert base.key() != preset("sch1", 4, 3, semantics="local").key()


@pytest.mark.parametrize("layers,heads", [(1, 1), (12, 3), (24, 3), (36, 6), (7, 2)])
def test_presets_for_any_shape(layers, heads):
    counts = {name: preset(name, layers, heads).counts() for name in PRESETS}
    assert counts["none"] == (0,) * layers
    assert counts["sch1"] == (1,) * layers == counts["random"]
    assert counts["all"] == (heads,) * layers
    sch2 = counts["sch2"]
    assert sch2 == tuple(sorted(sch2, reverse=True)), "sch2 masks more heads early than late"
    assert sch2[0] == max(heads - 1, 1)


def test_sch2_at_24_layers_is_the_paper_split():
    assert preset("sch2", 24, 3).counts() == (2,) * 8 + (1,) * 12 + (0,) * 4


def test_random_preset_is_seeded():
    a, b, c = preset("random", 4, 3, seed=1), preset("random", 4, 3, seed=1), preset("random", 4, 3, seed=2)
    assert a == b and a.pattern == "random" and a.key() != c.key()


def test_building_a_bad_spec_in_python_raises_one_line():
    with pytest.raises(ValueError, match=r"masks\[0\]\[0\]: head 3 is out of range"):
        MaskSpec(layers=1, heads=3, masks=[[3]])
    with pytest.raises(ValueError, match="window"):
        MaskSpec(layers=1, heads=3, masks=[[0]], window=(2, 3))


def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: LINE: FIELD: MESSAGE'"
    return first[len("# expect: "):]


def _rules() -> list[tuple[str, str]]:
    """Every rule ``spec_rules._problems`` enforces, as (field, message regex), read from its source:
    each ``yield (field, ...), message`` with the f-string's placeholders as wildcards."""
    import ast
    import re

    import maitsearch.spec_rules

    tree = ast.parse(Path(maitsearch.spec_rules.__file__).read_text())
    problems = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_problems")
    assigned = {a.targets[0].id: a.value for a in ast.walk(problems)
                if isinstance(a, ast.Assign) and isinstance(a.targets[0], ast.Name)}

    def patterns(node):
        if isinstance(node, ast.Name):
            yield from patterns(assigned[node.id])
        elif isinstance(node, ast.IfExp):
            yield from patterns(node.body)
            yield from patterns(node.orelse)
        elif isinstance(node, ast.JoinedStr):
            yield "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".*?" for v in node.values)
        else:
            yield re.escape(node.value)

    rules = []
    for node in ast.walk(problems):
        if isinstance(node, ast.Yield) and isinstance(node.value, ast.Tuple):
            where, message = node.value.elts
            field = where.elts[0].value if where.elts and isinstance(where.elts[0], ast.Constant) else ""
            rules += [(field, pattern) for pattern in patterns(message)]
    return rules


def test_corpus_breaks_every_rule_of_the_validator():
    import re

    errors = []
    for path in BAD_SPECS:
        with pytest.raises(SpecError) as info:
            load_spec(path)
        errors.append(info.value)
    rules = _rules()
    assert len(rules) >= 20, "the rule reader found the validator's rules"
    missed = [(field, pattern) for field, pattern in rules
              if not any(str(e.field).startswith(field) and re.fullmatch(pattern, e.message) for e in errors)]
    assert not missed, f"no corpus file breaks these rules: {missed}"


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_malformed_spec_gives_one_precise_error(path):
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:{_expectation(path)}")
    assert "\n" not in str(info.value)


def test_cli_spec_check_accepts_a_good_spec(tmp_path):
    path = preset("sch2", 12, 3).save(tmp_path / "good.yaml")
    wide = preset("sch2", 12, 3, window=(5, 5), semantics="local").save(tmp_path / "wide.yaml")
    result = subprocess.run([sys.executable, "-m", "maitsearch", "spec", "check", str(path), str(wide)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{path}: ok: 12x3, 14 hard-masked heads, compact 333311111100@3x3:paper",
                                          f"{wide}: ok: 12x3, 14 hard-masked heads, compact 333311111100@5x5:local"]


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = f"version: 1\nlayers: 1\nheads: 1\nmasks: [[0]]\nmeta: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError, match="tag not allowed"):
        parse_spec(text)
    assert not marker.exists()


def test_cli_spec_show_takes_compact_text_with_its_head_count(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maitsearch.cli import app

    runner = CliRunner()
    path = MaskSpec.from_compact("333311111100", 3).save(tmp_path / "sch2.yaml")
    from_file = runner.invoke(app, ["spec", "show", str(path)])
    from_text = runner.invoke(app, ["spec", "show", "333311111100@3x3:paper", "--heads", "3"])
    assert from_file.exit_code == from_text.exit_code == 0, from_text.output
    assert from_text.stdout == from_file.stdout
    bare = runner.invoke(app, ["spec", "show", "333311111100"])
    assert bare.exit_code == 2 and bare.stderr == "error: 333311111100: compact text holds no head count; give --heads\n"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "31").write_text(preset("all", 2, 2).to_yaml())  # compact text is never a path, as for --spec
    shown = runner.invoke(app, ["spec", "show", "31", "--heads", "2"])
    assert shown.exit_code == 0 and "compact         31" in shown.stdout, shown.output


def test_cli_spec_show_draws_a_preset_at_the_size_given(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maitsearch.cli import app

    runner = CliRunner()
    path = MaskSpec.from_compact("333311111100", 3).save(tmp_path / "hand.yaml")  # the paper's Sch.2 at 12x3
    from_file = runner.invoke(app, ["spec", "show", str(path)])
    from_preset = runner.invoke(app, ["spec", "show", "sch2", "--layers", "12", "--heads", "3"])
    assert from_preset.exit_code == 0, from_preset.output
    grid = from_file.stdout[from_file.stdout.index("placement "):]
    assert from_preset.stdout.endswith(grid) and "meta.preset     sch2" in from_preset.stdout
    unsized = runner.invoke(app, ["spec", "show", "sch2", "--heads", "3"])
    assert unsized.exit_code == 2
    assert unsized.stderr == "error: sch2: a preset has no size of its own; give --layers and --heads\n"
    monkeypatch.chdir(tmp_path)
    typo = runner.invoke(app, ["spec", "show", "sch9"])
    assert typo.exit_code == 2 and typo.stderr.startswith("error: spec sch9: no such file, nor a preset (none, sch1")
