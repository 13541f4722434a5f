"""The measurements every benchmark here shares.

Time: warm each case up once, then time the cases interleaved (A, B, A, B, ...) so a noisy machine
slows all of them alike, and take medians.  With pause > 0 each timed call is preceded by a sleep:
PyTorch and Numba share one OpenMP runtime (libgomp), whose idle threads spin for a while after
each parallel region, and the pause keeps one side's spinning out of the other's timing.

Memory: `peak_added_mib(step)` runs `step` once and returns the peak resident memory it added above
the resident set just before it.  Linux keeps ru_maxrss across execve, so a benchmark's child
process would inherit its parent's peak: the peak is read from /proc/self/status instead (VmHWM,
this process's own high-water mark), reset just before the step by writing 5 to
/proc/self/clear_refs.  Where /proc is missing, ru_maxrss.  Run it in a fresh subprocess that
imports only one library, so the two sides do not share an allocator's cached memory.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def timed(fn, pause=0.0):
    """Seconds one call of fn() takes, after sleeping `pause` seconds."""
    if pause:
        time.sleep(pause)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(cases, repeats, pause=0.0):
    """cases: [(label, fn)] -> {label: median seconds of fn()} over `repeats` interleaved rounds."""
    for _, fn in cases:                       # warm up: compile kernels, touch memory
        fn()
    times = {label: [] for label, _ in cases}
    for _ in range(repeats):
        for label, fn in cases:
            times[label].append(timed(fn, pause))
    return {label: statistics.median(ts) for label, ts in times.items()}


def _rss_mib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_added_mib(step):
    """Run step() once; {'added_mib', 'peak_mib', 'baseline_mib', 'how'} (see the module doc)."""
    try:
        before = _rss_mib('VmRSS')
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        step()
        peak, how = _rss_mib('VmHWM'), 'VmHWM'
    except (OSError, RuntimeError):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        step()
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'ru_maxrss'
    return {'added_mib': peak - before, 'peak_mib': peak, 'baseline_mib': before, 'how': how}


def memory_in_subprocess(script, *args):
    """Run `python script --measure-memory *args` in a fresh process (which prints the JSON of
    peak_added_mib as its last line) and return that dict."""
    out = subprocess.run([sys.executable, script, '--measure-memory', *map(str, args)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    return json.loads(out.stdout.strip().splitlines()[-1])

