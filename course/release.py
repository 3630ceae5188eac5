"""Coursework editions of the collection with nbgrader: tag the exercises, check the tags, build the
student release, autograde submissions in quick mode.

    python course/release.py tag notebooks/04_name.ipynb ...  # add nbgrader metadata to the exercises
    python course/release.py check [NOTEBOOK ...]             # exit 1 if an exercise lacks it (CI)
    python course/release.py build [NOTEBOOK ...]             # student editions -> build/course/release/
    python course/release.py autograde 00_tour [--student ID] # grade build/course/submitted/*/00_tour

Without names, `check` and `build` take every notebook in notebooks/. Each notebook is one nbgrader
assignment named after it (`00_tour`). The committed notebooks are the teaching edition: solutions in.

The exercise convention this reads (every notebook follows it):
  1. a markdown cell containing "**Exercise N.**";
  2. ONE code cell, the answer, whose answer lines sit between `### BEGIN SOLUTION` and
     `### END SOLUTION` (the student edition replaces them with `raise NotImplementedError()`);
  3. ONE code cell of `assert` checks ending with `print("Exercise N: correct")`: nbgrader's autograder
     cell, locked and worth 1 point unless a teacher set other points (kept when re-tagging).
Checks that would show the student the answer itself go between `### BEGIN HIDDEN TESTS` and
`### END HIDDEN TESTS`: nbgrader removes them from the student edition and restores them to grade.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the repository's tools/ (the notebook runner's headless settings)
    sys.path.insert(0, str(ROOT))
COURSE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = COURSE_DIR / "nbgrader_config.py"
NOTEBOOK_DIR = ROOT / "notebooks"
SHARED_FOLDERS = (ROOT / "configs",)  # what notebooks read as ../configs (shipped data is package data)

HEADING = re.compile(r"\*\*Exercise (\d+)\.\*\*")
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
DEFAULT_POINTS = 1
SCHEMA_VERSION = 3  # nbgrader's cell-metadata schema since 0.7


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its number and the indices of its answer and checks cells."""

    number: int
    answer_cell: int
    tests_cell: int


def delimited_regions(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """Split a cell's lines into those outside and those inside `begin`/`end` marker lines.

    Raises `ValueError` when the markers are unbalanced or nested, as nbgrader would refuse the cell.
    """
    outside, inside, open_region = [], [], False
    for line in source.splitlines():
        if begin in line:
            if open_region:
                raise ValueError(f"'{begin}' twice without '{end}' between them; close the first region")
            open_region = True
        elif end in line:
            if not open_region:
                raise ValueError(f"'{end}' without a '{begin}' before it; add the opening marker")
            open_region = False
        else:
            (inside if open_region else outside).append(line)
    if open_region:
        raise ValueError(f"'{begin}' is never closed; add '{end}'")
    return outside, inside


def check_answer_cell(cell: dict, number: int) -> None:
    """Raise `ValueError` unless the cell is code with at least one solution region."""
    if cell["cell_type"] != "code" or BEGIN_SOLUTION not in cell["source"]:
        raise ValueError(
            f"exercise {number}: the cell after its '**Exercise {number}.**' heading must be a code cell "
            f"with the answer between '{BEGIN_SOLUTION}' and '{END_SOLUTION}'"
        )
    delimited_regions(cell["source"], BEGIN_SOLUTION, END_SOLUTION)


def check_tests_cell(cell: dict, number: int) -> None:
    """Raise `ValueError` unless the cell is code whose visible part asserts and ends by printing success.

    The student edition keeps only the visible part, so it must still be able to fail on the blank stub
    (an `assert` stays visible) and tell the student so (the closing print stays visible).
    """
    closing = f"Exercise {number}: correct"
    where = f"exercise {number}: the second code cell after its heading (the checks)"
    if cell["cell_type"] != "code" or BEGIN_SOLUTION in cell["source"]:
        raise ValueError(f"{where} must be a code cell of asserts without a solution region")
    visible_lines, _ = delimited_regions(cell["source"], BEGIN_HIDDEN, END_HIDDEN)
    try:
        compile(TransformerManager().transform_cell("\n".join(visible_lines)), "checks", "exec")
    except SyntaxError as error:
        raise ValueError(
            f"{where} is not valid Python without its hidden tests ({error.msg}); put whole statements "
            f"and blocks between '{BEGIN_HIDDEN}' and '{END_HIDDEN}'"
        ) from None
    visible = [line.strip() for line in visible_lines if line.strip()]
    if not visible or not visible[-1].startswith("print(") or closing not in visible[-1]:
        raise ValueError(f'{where} must end with print("{closing}") outside any hidden-test region')
    if not any(line.startswith("assert") for line in visible):
        raise ValueError(
            f"{where} hides every assert; leave at least one visible so the student edition fails on the "
            f"blank stub (hide only the lines that give the answer away)"
        )


def find_exercises(notebook: dict) -> list[Exercise]:
    """The notebook's exercises in order, read from the convention in this module's docstring.

    Raises `ValueError` naming the exercise when a heading is not followed by an answer cell and a
    checks cell, when numbers are not 1, 2, 3, ..., or when solution or hidden-test markers sit outside
    an exercise (nbgrader would refuse those cells or keep the answer in the student edition).
    """
    cells = notebook["cells"]
    exercises = []
    for index, cell in enumerate(cells):
        numbers = [int(n) for n in HEADING.findall(cell["source"])] if cell["cell_type"] == "markdown" else []
        if len(numbers) > 1:
            raise ValueError(f"cell {index} holds exercises {numbers}; give each exercise its own markdown cell")
        if not numbers:
            continue
        number = numbers[0]
        if number != len(exercises) + 1:
            raise ValueError(f"exercise {number} follows exercise {len(exercises)}; number them 1, 2, 3, ...")
        if index + 2 >= len(cells):
            raise ValueError(f"exercise {number}: its heading must be followed by an answer cell and a checks cell")
        check_answer_cell(cells[index + 1], number)
        check_tests_cell(cells[index + 2], number)
        exercises.append(Exercise(number, index + 1, index + 2))
    claimed = {e.answer_cell for e in exercises} | {e.tests_cell for e in exercises}
    for index, cell in enumerate(cells):
        for marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if marker in cell["source"] and index not in claimed:
                raise ValueError(
                    f"cell {index} has '{marker}' but is not part of an exercise; put it in the answer or "
                    f"checks cell right after an '**Exercise N.**' heading"
                )
    return exercises


def exercise_metadata(exercise: Exercise, points: float) -> dict[int, dict]:
    """nbgrader metadata for an exercise's two cells, keyed by cell index (schema version 3).

    The answer cell is a solution cell (editable, not graded); the checks cell is an autograder cell,
    locked so the student edition cannot edit it, worth `points`.
    """
    number = exercise.number
    return {
        exercise.answer_cell: {
            "grade": False,
            "grade_id": f"exercise_{number}_answer",
            "locked": False,
            "schema_version": SCHEMA_VERSION,
            "solution": True,
        },
        exercise.tests_cell: {
            "grade": True,
            "grade_id": f"exercise_{number}_tests",
            "locked": True,
            "points": points,
            "schema_version": SCHEMA_VERSION,
            "solution": False,
        },
    }


def current_points(cell: dict) -> float:
    """The points a teacher gave a checks cell (in nbgrader's toolbar or by hand), else the default."""
    points = cell["metadata"].get("nbgrader", {}).get("points")
    return points if isinstance(points, (int, float)) and points >= 0 else DEFAULT_POINTS


def expected_metadata(notebook: dict) -> dict[int, dict]:
    """The nbgrader metadata every cell of `notebook` should carry, keyed by cell index."""
    expected = {}
    for exercise in find_exercises(notebook):
        expected.update(exercise_metadata(exercise, current_points(notebook["cells"][exercise.tests_cell])))
    return expected


def tagged(notebook: dict) -> dict:
    """A copy of `notebook` with exactly the nbgrader metadata its exercises need, and none elsewhere."""
    notebook = copy.deepcopy(notebook)
    expected = expected_metadata(notebook)
    for index, cell in enumerate(notebook["cells"]):
        if index in expected:
            cell["metadata"]["nbgrader"] = expected[index]
        else:
            cell["metadata"].pop("nbgrader", None)
    return notebook


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, raising `FileNotFoundError` with the folder to look in when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}; pass a path such as notebooks/00_tour.ipynb")
    return nbformat.read(path, as_version=4)


def tag_notebook(path: Path) -> bool:
    """Write the exercises' nbgrader metadata into the notebook at `path`; return whether it changed.

    Only cell metadata changes: sources and committed outputs stay, written as
    `tools.notebook_runner` writes notebooks so the diff is the metadata alone.
    """
    from hmrlab.io import atomic_write_text

    notebook = read_notebook(path)
    try:
        updated = tagged(notebook)
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None
    if updated == notebook:
        return False
    atomic_write_text(path, nbformat.writes(updated) + "\n")
    return True


def check_notebook(path: Path) -> list[str]:
    """Problems that stop `path` from being released and graded; empty when it is ready."""
    notebook = read_notebook(path)
    try:
        expected = expected_metadata(notebook)
    except ValueError as error:
        return [f"{path.name}: {error}"]
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        actual = cell["metadata"].get("nbgrader")
        if actual != expected.get(index):
            what = f"({expected[index]['grade_id']}) lacks" if index in expected else "is no exercise cell but has"
            problems.append(
                f"{path.name}: cell {index} {what} the expected nbgrader metadata; "
                f"run `python course/release.py tag {os.path.relpath(path)}`"
            )
    return problems


def course_api(course_root: Path | None = None):
    """An `nbgrader.apps.NbGraderAPI` set up by course/nbgrader_config.py (root overridable)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    # nbgrader runs the `alembic` command to create a gradebook; find it beside this interpreter even when
    # the virtual environment is not activated (`.venv/bin/python course/release.py`).
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    config = PyFileConfigLoader(CONFIG_FILE.name, path=str(COURSE_DIR)).load_config()
    if course_root is not None:
        config.CourseDirectory.root = str(Path(course_root).resolve())
    return NbGraderAPI(config=config)


def require_success(result: dict, what: str) -> None:
    """Raise `RuntimeError` with nbgrader's log when one of its API calls failed."""
    if not result["success"]:
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")


def build_release(notebooks: list[Path], course_root: Path | None = None) -> list[Path]:
    """Student editions of `notebooks` (nbgrader generate_assignment); return their paths.

    Each notebook becomes the assignment `<root>/source/<stem>/<stem>.ipynb` and its student edition
    `<root>/release/<stem>/<stem>.ipynb`: outputs cleared, solution regions replaced by
    `raise NotImplementedError()`, hidden tests removed, checks cells locked. Raises `ValueError`
    listing every untagged exercise before touching the course folder.
    """
    problems = [problem for path in notebooks for problem in check_notebook(path)]
    if problems:
        raise ValueError("not ready for release:\n  " + "\n  ".join(problems))
    api = course_api(course_root)
    root = Path(api.coursedir.root)
    released = []
    for path in notebooks:
        assignment = path.stem
        source = root / "source" / assignment
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        shutil.copy2(path, source / path.name)
        require_success(api.generate_assignment(assignment, force=True, create=True), f"generate_assignment {assignment}")
        released.append(root / "release" / assignment / path.name)
    return released


def link_shared_folders(folder: Path) -> None:
    """Make `../configs`, as the notebooks read it, resolve from assignments inside `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for shared in SHARED_FOLDERS:
        link = folder / shared.name
        if not link.exists():
            link.symlink_to(shared, target_is_directory=True)


def autograde(assignment: str, students: list[str] | None = None, course_root: Path | None = None) -> dict:
    """Autograde `<root>/submitted/<student>/<assignment>/` in quick mode; return per-cell scores.

    Quick mode (`HMRLAB_QUICK=1`, unless already set) keeps every notebook to seconds on a CPU; the
    checks are written to hold in both modes. Returns `{student: {grade_id: (score, max_score)}}`.
    Students default to every folder under `submitted/` that holds the assignment.
    """
    from nbgrader.api import Gradebook

    from tools.notebook_runner import apply_headless_env

    apply_headless_env()
    api = course_api(course_root)
    root = Path(api.coursedir.root)
    if students is None:
        students = sorted(p.parent.name for p in (root / "submitted").glob(f"*/{assignment}") if p.is_dir())
    if not students:
        raise FileNotFoundError(f"no submissions of {assignment} in {root / 'submitted'}; run nbgrader collect first")
    scores = {}
    for student in students:
        link_shared_folders(root / "autograded" / student)
        require_success(api.autograde(assignment, student, force=True, create=True), f"autograde {assignment} {student}")
        with Gradebook(api.coursedir.db_url) as gradebook:
            submission = gradebook.find_submission(assignment, student)
            scores[student] = {
                grade.name: (grade.score, grade.max_score)
                for notebook in submission.notebooks
                for grade in notebook.grades
            }
    return scores


def notebook_paths(names: list[str]) -> list[Path]:
    """The named notebooks (paths, or names inside notebooks/), or every notebook when none is named."""
    if not names:
        return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(n) if Path(n).exists() else NOTEBOOK_DIR / n for n in names]
    for path in paths:
        read_notebook(path)  # a clear FileNotFoundError before any work
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("tag", "add or refresh the exercises' nbgrader metadata, in place"),
        ("check", "exit 1 listing every exercise whose metadata is missing or stale"),
        ("build", "generate the student editions with nbgrader"),
    ):
        commands.add_parser(name, help=help_text).add_argument("notebooks", nargs="*")
    grade = commands.add_parser("autograde", help="autograde submitted copies of one assignment in quick mode")
    grade.add_argument("assignment", help="the notebook's name without .ipynb, e.g. 00_tour")
    grade.add_argument("--student", action="append", help="a student id (repeatable; default: all)")
    for sub in (commands.choices["build"], grade):
        sub.add_argument("--course-root", type=Path, help="course folder (default: build/course or HMRLAB_COURSE_ROOT)")
    args = parser.parse_args(argv)
    try:
        run_command(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        sys.exit(f"release.py {args.command}: {error}")


def run_command(args: argparse.Namespace) -> None:
    """Carry out one parsed command of `main`."""
    if args.command == "autograde":
        for student, cells in autograde(args.assignment, args.student, args.course_root).items():
            total, best = sum(s for s, _ in cells.values()), sum(m for _, m in cells.values())
            print(f"{student}: {total:g} / {best:g}  " + "  ".join(f"{k} {s:g}/{m:g}" for k, (s, m) in cells.items()))
        return
    paths = notebook_paths(args.notebooks)
    if args.command == "tag":
        for path in paths:
            print(f"{'tagged ' if tag_notebook(path) else 'already'}  {path}")
    elif args.command == "check":
        problems = [problem for path in paths for problem in check_notebook(path)]
        print("\n".join(problems) or f"{len(paths)} notebook(s) ready for nbgrader")
        if problems:
            sys.exit(1)
    else:
        for path in build_release(paths, args.course_root):
            print(f"released  {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
