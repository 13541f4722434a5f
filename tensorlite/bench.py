"""The repository's benchmark scripts (benchmarks/bench_*.py), found and run: `tensorlite bench`.

    from tensorlite.bench import list_benchmarks, run_benchmarks
    list_benchmarks()                       # {'conv': (path, first line of its docstring), ...}
    run_benchmarks(['conv'], ['--repeats', '3'])      # [] when every script exited with 0
"""
import ast
import subprocess
import sys
from pathlib import Path

__all__ = ['benchmarks_folder', 'list_benchmarks', 'run_benchmarks']


def benchmarks_folder():
    """The benchmarks/ folder beside the package (it ships with the repository, not the wheel)."""
    from . import __file__ as package_file
    return Path(package_file).resolve().parents[1] / 'benchmarks'


def list_benchmarks(folder=None):
    """{name: (script path, first paragraph of its docstring)}, name = file name without bench_
    and .py.  FileNotFoundError when the folder does not exist."""
    folder = benchmarks_folder() if folder is None else Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"the benchmarks folder {str(folder)!r} does not exist: "
                                f"benchmarks ship with the repository, not the installed "
                                f"package (clone it and pip install -e .)")
    found = {}
    for script in sorted(folder.glob('bench_*.py')):
        try:
            doc = ast.get_docstring(ast.parse(script.read_text(encoding='utf-8'))) or ''
        except (SyntaxError, UnicodeDecodeError):
            doc = ''
        found[script.stem[len('bench_'):]] = (script, ' '.join(doc.split('\n\n')[0].split()))
    return found


def run_benchmarks(names=None, extra=(), timeout=3600.0):
    """Run the benchmarks `names` (default all; 'conv', 'bench_conv' or 'bench_conv.py') one after
    the other with the arguments `extra`, each killed after `timeout` seconds.  Returns the
    failures as strings (empty when all passed); ValueError for an unknown name."""
    scripts = list_benchmarks()          # benchmarks_folder() read here: tests point it elsewhere
    chosen = []
    for word in names or list(scripts):
        name = word[:-3] if word.endswith('.py') else word
        name = name[len('bench_'):] if name.startswith('bench_') else name
        if name not in scripts:
            raise ValueError(f"unknown benchmark {word!r}; expected one of: {', '.join(scripts)}")
        chosen.append(name)
    failed = []
    for name in chosen:
        script = scripts[name][0]
        print(f"== {name}: {script.name} {' '.join(extra)}".rstrip(), flush=True)
        try:
            code = subprocess.call([sys.executable, str(script)] + list(extra),
                                   cwd=str(script.parent), timeout=timeout)   # killed on timeout
        except subprocess.TimeoutExpired:
            failed.append(f"{name} (killed after --timeout {timeout:g} s)")
            continue
        if code != 0:
            failed.append(f"{name} (exit {code})")
    return failed
