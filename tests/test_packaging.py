"""House rules: dependencies in step, notebooks stored clean, Colab badges, no path hacks."""
import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch", "pysoundfile": "soundfile"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pypi = {_name(r) for r in pyproject["dependencies"]}
    extras = pyproject["optional-dependencies"]
    pypi |= {_name(r) for r in extras["tf"] + extras["dev"]}
    conda = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("\ndependencies:") :].splitlines():
        m = re.match(r"^(?:  |      )- ([A-Za-z0-9_.-]+)", line)
        if m and m.group(1) not in {"python", "pip", "-e"}:
            conda.add(CONDA_TO_PYPI.get(m.group(1).lower(), m.group(1).lower()))
    assert conda == pypi, f"only in environment.yml: {conda - pypi}; only in pyproject: {pypi - conda}"


def test_dependency_ranges_are_bounded():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = pyproject["dependencies"] + [r for group in pyproject["optional-dependencies"].values() for r in group]
    for r in reqs:
        version = r.split(";")[0]  # an environment marker may compare with ==
        assert "<" in version and "==" not in version, f"{r}: give a bounded range, not a pin or an open end"


def test_notebooks_exist_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names[:5] == [
        "00_setup.ipynb",
        "01_sound_and_sampling.ipynb",
        "02_dft_and_fft.ipynb",
        "03_stft.ipynb",
        "04_mel_spectrograms.ipynb",
    ]
    for name in names:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name)


def test_notebooks_are_clean_and_follow_the_skeleton():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        text = "\n".join("".join(c["source"]) for c in nb["cells"])
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name}: stored outputs"
        assert f"colab.research.google.com/github/musiclib-course/musiclib/blob/main/notebooks/{path.name}" in text
        assert "sys.path" not in text, f"{path.name}: import the installed musiclib instead"
        assert "google.colab" in "".join(code[0]["source"]), f"{path.name}: first code cell must be the setup cell"
        for heading in ("Learning objectives", "**Run time**", "## Exercises", "## Summary", "## Further reading"):
            assert heading in text, f"{path.name}: missing {heading!r}"
        assert "assert " in text, f"{path.name}: notebooks assert what they claim"
        assert "@param" in "".join(code[0]["source"]), f"{path.name}: the setup cell has the run-size selector"
        opening = "".join(nb["cells"][0]["source"])
        assert "../docs/course-map.md" in opening and "../docs/notation.md" in opening, f"{path.name}: opens with its place on the map"


def test_the_course_map_shows_every_notebook():
    course_map = (ROOT / "docs" / "course-map.md").read_text()
    assert (ROOT / "docs" / "notation.md").exists()
    for path in NOTEBOOKS:
        assert f"| {path.name[:2]} |" in course_map and f'N{path.name[:2]}["{path.name[:2]} ' in course_map, path.name


def test_exercises_have_reference_solutions_and_self_checks():
    for path in NOTEBOOKS[1:]:
        number = path.name[:2]
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        checks = set(re.findall(rf"\bnb{number}\.check_(\d)\(", code))
        assert f"from musiclib.exercises import nb{number}" in code and len(checks) >= 2, f"{path.name}: 2-4 self-checked exercises"
        module = __import__(f"musiclib.exercises.nb{number}", fromlist=["_"])
        for k in checks:
            assert callable(getattr(module, f"exercise_{k}")), f"{path.name}: exercise {k} has no reference solution"


def test_learner_text_never_calls_the_original_projects_seeds():
    """'seed' means a random seed only; the four earlier projects are 'the original project'."""
    random_seed = re.compile(r"(random|same|different)\s+seeds?\b|\bseeds (Python|PyTorch)", re.I)
    for path in NOTEBOOKS:
        markdown = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
        prose = random_seed.sub("", re.sub(r"`[^`]*`", "", markdown))
        leftover = [prose[max(0, m.start() - 30) : m.end() + 30] for m in re.finditer(r"\bseeds?\b", prose, re.I)]
        assert not leftover, f"{path.name}: say 'the original project' instead of: {leftover}"


def test_a_silent_player_fails_the_notebook_run(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    cells = ["import numpy as np\nfrom musiclib import audio\nfor _ in range(2):\n    audio.play(np.zeros(100), 8000)",
             "audio.play = lambda y, sample_rate: None  # a player that never shows\naudio.play(np.zeros(100), 8000)"]
    notebook = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [], "execution_count": None, "source": c}
                          for i, c in enumerate(cells)],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "silent.ipynb").write_text(json.dumps(notebook))
    result = subprocess.run([sys.executable, "-m", "pytest", "silent.ipynb", "--nbval-lax", "--nbval-current-env", "-q",
                             "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "players missing from the outputs: cell 1" in result.stdout, result.stdout[-2000:]
    assert "2 passed" in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    first_commands = [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert first_commands[:2] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_license_file_matches_pyproject():
    license_id = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert (ROOT / "LICENSE").read_text().splitlines()[0] == f"{license_id} License"


def test_installs_beside_colabs_preinstalled_versions(tmp_path):
    """`pip install musiclib` resolves with Colab's IPython and ipywidgets kept as they are (a dry run)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                             "-c", str(ROOT / "tests" / "colab-constraints.txt"), str(ROOT)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ResolutionImpossible" not in result.stderr


def test_the_readme_results_table_is_the_one_make_results_wrote():
    """docs/results.md and the README's table are what `musiclib compare` makes of docs/results.json: no number typed by hand."""
    import json

    from musiclib import report

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(report.README_START) + len(report.README_START) : readme.index(report.README_END)]
    results = json.loads((ROOT / "docs" / "results.json").read_text())
    assert block.strip() == report.readme_block(results, results["command"], "docs/results.md").strip()
    assert (ROOT / "docs" / "results.md").read_text() == report.full_page(results, results["command"])
    models = [row for table in results["datasets"].values() for row in table["rows"] if row["kind"] == "model"]
    assert models and min(row["seeds"] for row in models) >= 3, "three seeds per model"
    assert "musiclib compare" in (ROOT / "Makefile").read_text()
