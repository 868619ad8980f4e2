"""nbval hooks: every call to ``audio.play`` in a notebook must show a player in that run's outputs.

After the last cell of each notebook, one more test item ("players") checks, cell by cell, that the
players which really appeared in the outputs are at least as many as the cell's ``play(`` (or
``play_grid(``) call sites
(a call inside a loop or a widget callback must show its player too), and reports the total.
"""
import re
from collections import defaultdict

import pytest

PLAY_CALL = re.compile(r"^[^#\n]*\bplay(_grid)?\(", re.M)  # a call site, not a comment
SHOWN = defaultdict(dict)  # notebook path -> {cell index: (call sites, players shown)}


def _players(outputs) -> int:
    return sum(str(out.get("data", {}).get("text/html", "")).count("<audio") for out in outputs or [])


class PlayerCount(pytest.Item):
    """Passes when every executed cell with ``play(`` calls showed at least that many players."""

    def runtest(self):
        cells = SHOWN.get(str(self.path), {})
        missing = [f"cell {i}: {calls} play() call(s), {shown} player(s) shown"
                   for i, (calls, shown) in sorted(cells.items()) if shown < calls]
        total = sum(shown for _, shown in cells.values())
        if missing:
            raise AssertionError(f"{self.path.name}: players missing from the outputs: " + "; ".join(missing))
        print(f"{self.path.name}: {total} players shown")

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::players"


def pytest_collection_modifyitems(session, config, items):
    last_cell = {}
    for index, item in enumerate(items):
        if type(item).__name__ == "IPyNbCell":
            last_cell[item.parent] = index
    for notebook, index in sorted(last_cell.items(), key=lambda pair: -pair[1]):
        items.insert(index + 1, PlayerCount.from_parent(notebook, name="players"))
    # The longest notebooks first, by the run time each states: with several pytest workers (`make test`) they
    # start early and the short unit tests fill the gaps at the end, instead of one worker finishing alone.
    minutes = {notebook: _stated_minutes(notebook.path) for notebook in last_cell}
    # A stable sort: each notebook's cells keep their order, and the other tests theirs, after the notebooks.
    items.sort(key=lambda item: (0, -minutes[item.parent], str(item.parent.path)) if item.parent in minutes else (1, 0.0, ""))


RUN_TIME = re.compile(r"\*\*Run time\*\*: (?:under a minute|about (\d*)(½)? minutes?)")


def _stated_minutes(path) -> float:
    """The run time a notebook states in its objectives ("under a minute" counts as half of one)."""
    found = RUN_TIME.search(path.read_text())
    if found is None or not (found.group(1) or found.group(2)):
        return 0.5
    return float(found.group(1) or 0) + (0.5 if found.group(2) else 0.0)


def pytest_runtest_makereport(item, call):
    if call.when != "call" or type(item).__name__ != "IPyNbCell":
        return
    calls = len(PLAY_CALL.findall(item.cell.source))
    if calls:
        SHOWN[str(item.parent.path)][item.cell_num] = (calls, _players(getattr(item, "test_outputs", None)))
