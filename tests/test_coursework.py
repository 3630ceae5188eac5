"""Coursework editions (course/release.py): every exercise tagged for nbgrader, the student edition
cleared of answers, its checks failing on the blank stub, and the teaching edition graded in full.

The tests marked `notebook` execute each notebook twice more in quick mode (the student edition, and
nbgrader's autograde of the teaching edition); the teaching edition's own run is in test_notebooks.py.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent


def load_release_module():
    """course/release.py is a script, not part of the package: load it by path."""
    spec = importlib.util.spec_from_file_location("course_release", ROOT / "course" / "release.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


release = load_release_module()
NOTEBOOKS = release.notebook_paths([])
HEADING = re.compile(r"\*\*Exercise \d+\.\*\*")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def region_lines(source: str, begin: str, end: str) -> list[str]:
    """Lines strictly between `begin` and `end` marker lines (written here, not taken from release.py)."""
    inside, lines = False, []
    for line in source.splitlines():
        if begin in line or end in line:
            inside = begin in line
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def exercise_cells(notebook: nbformat.NotebookNode) -> tuple[list[int], list[int]]:
    """Indices of the answer and checks cells: the two code cells after each exercise heading."""
    headings = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and HEADING.search(c.source)]
    return [i + 1 for i in headings], [i + 2 for i in headings]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_tagged(path: Path) -> None:
    answers, checks = exercise_cells(read(path))
    assert answers, f"{path.name} has no '**Exercise N.**' cells; every notebook ends with exercises"
    assert release.check_notebook(path) == [], f"run `python course/release.py tag {path}`"


def test_tag_restores_stripped_metadata_and_nothing_else(tmp_path: Path) -> None:
    original = read(release.NOTEBOOK_DIR / "00_tour.ipynb")
    stripped = read(release.NOTEBOOK_DIR / "00_tour.ipynb")
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    path = tmp_path / "00_tour.ipynb"
    nbformat.write(stripped, path)
    answers, checks = exercise_cells(stripped)
    problems = release.check_notebook(path)
    assert len(problems) == len(answers) + len(checks) and all("lacks" in p for p in problems), problems

    assert release.tag_notebook(path) is True
    assert release.check_notebook(path) == []
    assert release.tag_notebook(path) is False, "tagging twice must change nothing"
    assert read(path) == original, "tag must reproduce the committed metadata and keep sources and outputs"


def test_tag_keeps_points_a_teacher_set(tmp_path: Path) -> None:
    notebook = read(release.NOTEBOOK_DIR / "02_data.ipynb")
    _, checks = exercise_cells(notebook)
    notebook.cells[checks[0]].metadata.nbgrader.points = 3
    path = tmp_path / "02_data.ipynb"
    nbformat.write(notebook, path)
    assert release.check_notebook(path) == []
    assert release.tag_notebook(path) is False
    assert read(path).cells[checks[0]].metadata.nbgrader.points == 3


def exercise(answer: str, checks: str, heading: str = "**Exercise 1.** Set `x`.") -> list:
    return [new_markdown_cell(heading), new_code_cell(answer), new_code_cell(checks)]


GOOD_ANSWER = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
GOOD_CHECKS = 'assert x == 1\nprint("Exercise 1: correct")'
BROKEN = {
    "no solution region": (exercise("x = 1", GOOD_CHECKS), "### BEGIN SOLUTION"),
    "unclosed solution": (exercise("### BEGIN SOLUTION\nx = 1", GOOD_CHECKS), "never closed"),
    "no closing print": (exercise(GOOD_ANSWER, "assert x == 1"), 'print("Exercise 1: correct")'),
    "every assert hidden": (
        exercise(GOOD_ANSWER, '### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS\nprint("Exercise 1: correct")'),
        "hides every assert",
    ),
    "hidden tests split a block": (
        exercise(GOOD_ANSWER, 'assert x == 1\nif x:\n    ### BEGIN HIDDEN TESTS\n    assert x > 0\n'
                 '    ### END HIDDEN TESTS\nprint("Exercise 1: correct")'),
        "not valid Python without its hidden tests",
    ),
    "numbers skip": (
        exercise(GOOD_ANSWER, GOOD_CHECKS) + exercise(GOOD_ANSWER, GOOD_CHECKS, "**Exercise 3.** Again."),
        "number them 1, 2, 3",
    ),
    "solution outside an exercise": ([new_code_cell(GOOD_ANSWER)], "not part of an exercise"),
    "heading with one cell after it": (exercise(GOOD_ANSWER, GOOD_CHECKS)[:2], "answer cell and a checks cell"),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_check_refuses_notebooks_off_the_convention(case: str, tmp_path: Path) -> None:
    cells, phrase = BROKEN[case]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    problems = release.check_notebook(path)
    assert len(problems) == 1 and phrase in problems[0], problems
    with pytest.raises(ValueError, match=re.escape(phrase)):
        release.tag_notebook(path)


def test_check_command_exits_nonzero_on_an_untagged_notebook(tmp_path: Path, capsys) -> None:
    path = tmp_path / "01_x.ipynb"
    nbformat.write(new_notebook(cells=exercise(GOOD_ANSWER, GOOD_CHECKS)), path)
    with pytest.raises(SystemExit) as exit_info:
        release.main(["check", str(path)])
    assert exit_info.value.code == 1
    assert "exercise_1_answer" in capsys.readouterr().out
    release.main(["tag", str(path)])
    release.main(["check", str(path)])
    assert "1 notebook(s) ready" in capsys.readouterr().out


# Everything below needs nbgrader itself.


@pytest.fixture(scope="module")
def nbgrader_installed() -> None:
    pytest.importorskip("nbgrader", reason="nbgrader is not installed: pip install -e '.[course]'")


@pytest.mark.usefixtures("nbgrader_installed")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_metadata_passes_nbgrader_validation(path: Path) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(read(path))


@pytest.fixture(scope="module")
def course(nbgrader_installed, tmp_path_factory) -> Path:
    """An nbgrader course folder, shared by this module's tests (each test has its own assignment)."""
    return tmp_path_factory.mktemp("course")


def student_edition(path: Path, course: Path) -> Path:
    """The student edition of `path` in `course`, generated by nbgrader on first use."""
    released = course / "release" / path.stem / path.name
    if not released.exists():
        release.build_release([path], course)
    return released


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_hides_answers_and_keeps_the_rest(path: Path, course: Path) -> None:
    teaching = read(path)
    student = read(student_edition(path, course))
    assert len(student.cells) == len(teaching.cells)
    answers, checks = exercise_cells(teaching)
    for index, (mine, theirs) in enumerate(zip(student.cells, teaching.cells)):
        assert not mine.get("outputs"), f"cell {index} kept its outputs"
        if index in answers or index in checks:
            # A hidden-test region cut out of an indented block would leave a cell that cannot even run.
            compile(TransformerManager().transform_cell(mine.source), f"{path.name} cell {index}", "exec")
        if index in answers:
            assert "raise NotImplementedError()" in mine.source
            for line in region_lines(theirs.source, "### BEGIN SOLUTION", "### END SOLUTION"):
                assert line not in mine.source, f"cell {index} still shows the answer line {line!r}"
        elif index in checks:
            assert mine.metadata.get("editable") is False, f"checks cell {index} is not locked"
            for line in region_lines(theirs.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
                assert line not in mine.source, f"cell {index} still shows the hidden check {line!r}"
        else:
            assert mine.source == theirs.source, f"cell {index} is not an exercise cell but changed"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_runs_and_fails_every_check(
    path: Path, course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("HMRLAB_QUICK", "1")
    monkeypatch.setenv("HMRLAB_OUTPUT_DIR", str(tmp_path))
    student = read(student_edition(path, course))
    release.link_shared_folders(course / "release")
    client = NotebookClient(
        student, kernel_name="hmrlab", allow_errors=True, timeout=600,
        resources={"metadata": {"path": str(course / "release" / path.stem)}},
    )
    client.widget_registry = {}  # as tools.notebook_runner: nbclient's Output-widget emulation can deadlock
    client.execute()

    answers, checks = exercise_cells(read(path))
    for index, cell in enumerate(student.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if index in checks:
            assert errors, f"checks cell {index} passes on the blank stub: it checks nothing\n{cell.source}"
        elif index not in answers and cell.cell_type == "code":
            assert not errors, f"cell {index} fails in the student edition: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_autograding_the_teaching_edition_gives_full_points(
    path: Path, course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HMRLAB_QUICK", "1")
    monkeypatch.setenv("HMRLAB_OUTPUT_DIR", str(tmp_path))
    student_edition(path, course)  # nbgrader grades against the assignment it generated
    submitted = course / "submitted" / "teacher" / path.stem
    submitted.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, submitted / path.name)
    scores = release.autograde(path.stem, ["teacher"], course)["teacher"]

    teaching = read(path)
    _, checks = exercise_cells(teaching)
    graded = [teaching.cells[i].metadata.nbgrader for i in checks]
    assert scores == {cell.grade_id: (cell.points, cell.points) for cell in graded}
