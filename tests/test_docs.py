"""The docs keep each number in one place: the README is a manual, findings live in
results/FINDINGS.md, and the results and benchmark pages are generated, never edited."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from maitsearch.spec import PRESETS, preset

ROOT = Path(__file__).resolve().parent.parent
HAND_WRITTEN = [ROOT / "README.md", ROOT / "results" / "FINDINGS.md", *sorted((ROOT / "docs").glob("*.md"))]

# What a measured result looks like in prose: a signed gap (+0.63), an accuracy (95.09) or a
# searched placement in its compact form (`771011`). Settings (lr 3e-3, width 48) are not results.
RESULT = re.compile(r"(?<![\w.])[+-]\d+\.\d{2}(?![\w.])|(?<![\w.+-])\d{2}\.\d{2}(?![\w.])|`[0-9a-f]{6,}`")


def results_in(path: Path) -> set[str]:
    definitions = {f"`{preset(name, 24, 3).compact()}`" for name in PRESETS}  # format examples, not findings
    return {token.lstrip("+-") for token in RESULT.findall(path.read_text())} - definitions


def test_readme_is_a_manual_of_at_most_ten_kilobytes():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 10_240
    for heading in ("## Install", "## Quick start", "## Citing and license"):
        assert heading in text
    assert not results_in(ROOT / "README.md"), "the README links to measured numbers, it does not type them"


def test_the_quick_start_keeps_its_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e . && maitsearch run --layers 24 --heads 3" in text
    assert 'pip install -e ".[test]" && python -m pytest' in text
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_no_result_is_written_by_hand_in_two_docs():
    seen: dict[str, list[str]] = {}
    for path in HAND_WRITTEN:
        for token in results_in(path):
            seen.setdefault(token, []).append(path.relative_to(ROOT).as_posix())
    twice = {token: files for token, files in seen.items() if len(files) > 1}
    assert not twice, f"results typed in more than one doc (keep each in one, link from the others): {twice}"


def test_the_checker_sees_a_result_typed_twice(tmp_path):
    one, two = tmp_path / "a.md", tmp_path / "b.md"
    one.write_text("the answer `771011` is +0.63 over none (92.29 ± 0.19)")
    two.write_text("lr 3e-3, width 48; it was +0.63 there")
    assert results_in(one) == {"`771011`", "0.63", "92.29"} and results_in(two) == {"0.63"}


def _generator(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_benchmarks_page_is_generated_from_its_json():
    page = ROOT / "benchmarks" / "README.md"
    assert _generator(ROOT / "benchmarks" / "summarize.py").build() == page.read_text(), \
        "run python benchmarks/summarize.py"


@pytest.mark.slow
def test_the_results_page_is_generated_from_the_run_folders():
    page = ROOT / "results" / "README.md"
    assert _generator(ROOT / "results" / "summarize.py").build() == page.read_text(), \
        "run python results/summarize.py"
    assert "FINDINGS.md" in page.read_text() and "## Findings on" not in page.read_text(), "linked, not copied"



def test_the_gpu_check_names_tests_scripts_and_flags_that_exist():
    """benchmarks/gpu_check.sh runs only where a GPU is lent, so nothing else would notice it rot:
    it must parse, and every test file, script and flag it names must be there."""
    import subprocess

    from typer.testing import CliRunner

    from maitsearch.cli import app

    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    steps = [line.split()[3:] for line in script.read_text().splitlines() if line.strip().startswith("step ")]
    assert len(steps) >= 4
    helps = {}
    for command in steps:
        files = [word for word in command if word.endswith(".py")]
        assert all((ROOT / f).is_file() for f in files), files
        if command[1].startswith("benchmarks/"):
            if command[1] not in helps:
                helps[command[1]] = subprocess.run([sys.executable, command[1], "--help"], capture_output=True,
                                                   text=True, cwd=ROOT).stdout
            shown = helps[command[1]]
        elif command[1:3] == ["-m", "maitsearch"]:
            shown = CliRunner().invoke(app, [command[3], "--help"], env={"COLUMNS": "200"}).output
        else:
            continue
        flags = [word for word in command if word.startswith("--")]
        assert [flag for flag in flags if flag not in shown] == [], command


def test_every_commands_help_keeps_its_sentences_whole():
    """Typer prints a command's help with the docstring's own line breaks, so a sentence wrapped
    at 100 columns in the source would break mid-line. Rendered wide, every sentence of every
    command's help must come out on one line."""
    import inspect

    import typer.main
    from typer.testing import CliRunner

    from maitsearch.cli import app

    def commands(group, prefix=""):
        for name, command in group.commands.items():
            yield prefix + name, command
            if hasattr(command, "commands"):
                yield from commands(command, f"{prefix}{name} ")

    listed = dict(commands(typer.main.get_command(app)))
    assert {"run", "export", "transfer", "spec preset", "cache clear"} <= set(listed)
    runner = CliRunner()
    for name, command in listed.items():
        if hasattr(command, "commands"):
            continue
        shown = runner.invoke(app, [*name.split(), "--help"], terminal_width=400, env={"COLUMNS": "400"}).output
        printed = [" ".join(line.split()) for line in shown.splitlines()]
        for paragraph in inspect.cleandoc(command.callback.__doc__).split("\n\n"):
            assert " ".join(paragraph.split()) in printed, (name, paragraph)


# ``maitsearch <command> [<subcommand>] ...flags`` in a doc, up to the end of its code span or line
INLINE_CODE = re.compile(r"(?<!`)`[^`]+`(?!`)")
COMMAND_IN_DOCS = re.compile(r"maitsearch ([a-z]+(?: [a-z]+)?(?![\w-]))([^`\n|]*)")


def test_every_command_the_docs_show_uses_flags_the_command_has():
    """A renamed flag breaks the commands people copy from the docs, and no test that runs the
    CLI reads them: every flag after ``maitsearch <command>`` in a page (the generated ones give
    each committed run's command) must be one that command takes."""
    import typer.main

    from maitsearch.cli import app

    group = typer.main.get_command(app)
    checked, unknown = 0, []
    for page in (*HAND_WRITTEN, ROOT / "results" / "README.md", ROOT / "benchmarks" / "README.md"):
        text = page.read_text().replace("\\\n", " ")  # a command continued on the next line
        text = INLINE_CODE.sub(lambda span: " ".join(span.group().split()), text)  # or wrapped in a `span`
        for match in COMMAND_IN_DOCS.finditer(text):
            words = match.group(1).split()
            command = group.commands.get(words[0])
            if command is None:
                continue
            if hasattr(command, "commands") and len(words) > 1:
                command = command.commands.get(words[1], command)
            flags = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
            for flag in re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", match.group(2)):
                checked += 1
                if flag not in flags | {"--help"}:
                    unknown.append(f"{page.name}: maitsearch {' '.join(words)} ... {flag}")
    assert checked >= 200  # the pattern still finds the docs' commands
    assert unknown == []
