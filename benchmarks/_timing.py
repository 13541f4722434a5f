"""The measurements every benchmark here shares.

Time: warm each case up once, then time the cases interleaved (A, B, A, B, ...) so a noisy machine
slows all of them alike, and take medians.  With pause > 0 each timed call is preceded by a sleep:
PyTorch and Numba share one OpenMP runtime (libgomp), whose idle threads spin for a while after
each parallel region, and the pause keeps one side's spinning out of the other's timing.

Two libraries in one process share one OpenMP runtime (libgomp), which reads its wait policy once,
when it is loaded: the library imported first sets it for both (tensorlite asks for the passive
policy; PyTorch runs with libgomp's default), and either side's idle threads can spin in the
other's timing.  So a benchmark against PyTorch runs each side in a worker process of its own
(`Worker`, `serve`) and alternates their calls with `worker_medians`.

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
import select
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



# ---- each side in a process of its own ----------------------------------------------------------

WORKER_TIMEOUT = 900            # seconds a worker may take to get ready or to answer one call


def serve(fns):
    """The body of a worker process: print 'ready', then for every line 'K' on stdin run fns[K]
    once and print the seconds it took; stop at 'quit' or at the end of input."""
    print('ready', flush=True)
    for line in sys.stdin:
        if line.strip() == 'quit':
            break
        print(repr(timed(fns[int(line)])), flush=True)


class Worker:
    """`python script *args` as a worker (its main calls `serve`); every read waits at most
    WORKER_TIMEOUT seconds, and close() stops it (kills it if need be)."""

    def __init__(self, name, script, *args):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, script, *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, 'PYTHONWARNINGS': 'ignore'})

    def read(self, expect=None):
        ready, _, _ = select.select([self.proc.stdout], [], [], WORKER_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ''
        if not line or (expect is not None and line.strip() != expect):
            self.close()
            err = self.proc.stderr.read()[-3000:]
            raise RuntimeError(f"the {self.name} worker {'stopped' if ready else 'timed out'} "
                               f"(got {line.strip()!r}):\n{err}")
        return line

    def call(self, k):
        """Seconds the worker's fns[k] took, timed inside the worker."""
        self.proc.stdin.write(f'{k}\n')
        self.proc.stdin.flush()
        return float(self.read())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('quit\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def worker_medians(workers, k, repeats, pause=0.05):
    """{worker name: median seconds of its fns[k]} over `repeats` rounds that alternate the
    workers (A, B, A, B, ...), with `pause` seconds before every call; each worker has already
    warmed fns[k] up or does so on the first call, which is not counted."""
    for w in workers:
        w.call(k)
    times = {w.name: [] for w in workers}
    for _ in range(repeats):
        for w in workers:
            time.sleep(pause)
            times[w.name].append(w.call(k))
    return {name: statistics.median(ts) for name, ts in times.items()}
