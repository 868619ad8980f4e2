"""Shared timing helper for the benchmark scripts (run them as `python benchmarks/NAME.py`)."""
import time


def best_time(fn, repeat):
    """``(fastest wall time in seconds over repeat calls, the last result)``."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
