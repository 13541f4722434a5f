"""The measurement every benchmark here shares: warm each case up once, then time the cases
interleaved (A, B, A, B, ...) so a noisy machine slows all of them alike, and take medians."""
import statistics
import time


def interleaved_medians(cases, repeats):
    """cases: [(label, fn)] -> {label: median seconds of fn()} over `repeats` interleaved rounds."""
    for _, fn in cases:                       # warm up: compile kernels, touch memory
        fn()
    times = {label: [] for label, _ in cases}
    for _ in range(repeats):
        for label, fn in cases:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(ts) for label, ts in times.items()}
