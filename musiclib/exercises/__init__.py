"""Reference solutions to the notebooks' exercises, one function per exercise (``nbNN.exercise_k``).

Each notebook ends with short exercises. Under each one a self-check cell runs the learner's own
function next to the reference on the same inputs: ``nb06.check_2(my_click_ratio)``. A function that
still raises ``NotImplementedError`` is reported as not attempted; a wrong one fails with what differs.

Notebook: every notebook's "Exercises" section.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["check"]


def _compare(got, expected, atol: float, rtol: float, where: str) -> None:
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            raise AssertionError(f"{where}: expected a dict with keys {sorted(expected)}, got {got!r:.200}")
        for key in expected:
            _compare(got[key], expected[key], atol, rtol, f"{where}[{key!r}]")
        return
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise AssertionError(f"{where}: expected {len(expected)} values, got {got!r:.200}")
        for i, (g, e) in enumerate(zip(got, expected)):
            _compare(g, e, atol, rtol, f"{where}[{i}]")
        return
    got_array = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got)
    expected_array = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected)
    if got_array.shape != expected_array.shape:
        raise AssertionError(f"{where}: expected shape {expected_array.shape}, got {got_array.shape}")
    if not np.allclose(got_array, expected_array, atol=atol, rtol=rtol):
        error = np.max(np.abs(got_array.astype(np.complex128) - expected_array.astype(np.complex128)))
        raise AssertionError(f"{where}: differs from the reference by up to {error:.3g}")


def check(answer: Callable | None, solution: Callable, cases: Iterable[tuple], atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Run ``answer`` and ``solution`` on the same argument tuples and compare the results.

    Args:
        answer: The learner's function (``None`` or one raising ``NotImplementedError``: not attempted yet).
        solution: The reference solution.
        cases: Argument tuples to call both with.
        atol, rtol: Tolerances for numbers and arrays (dicts and tuples are compared item by item).

    Returns:
        ``True`` when every case agrees, ``False`` when the exercise is not attempted yet.

    Raises:
        AssertionError: naming the first case and the value that differs.
    """
    name = getattr(answer, "__name__", "your answer")
    cases = list(cases)
    for i, args in enumerate(cases):
        try:
            got = None if answer is None else answer(*args)
        except NotImplementedError:
            got = None
        if got is None:
            print(f"{name}: not attempted yet. Write it in the cell above, then run this cell again.")
            return False
        _compare(got, solution(*args), atol, rtol, f"{name}, case {i + 1} of {len(cases)}")
    print(f"{name}: agrees with the reference solution ({solution.__module__}.{solution.__name__}) on {len(cases)} cases.")
    return True
