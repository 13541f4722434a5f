"""The NumPy-backed stand-in for CuPy (tensorlite/testing/simcupy.py) against real CuPy.

Every public name the stand-in models (module functions, ufuncs, NumPy re-exports, classes with
their methods and attributes, any fake submodule such as cupy.cuda) is enumerated from the stand-in
itself, so a name added there later is checked here without editing this file.  Each must exist in
real CuPy, and each callable must have CuPy's signature: the same parameters in the same order, of
the same kinds, with the same defaults (annotations ignored).

CuPy's signature comes from `inspect.signature` when CuPy's object gives one (its Python functions),
else from the signature Cython embeds as the first line of the docstring (ndarray's methods, ufuncs,
ufunc.at), read with `ast`.  Neither needs a device: the cupy-cuda12x wheel imports on a machine
without a GPU.  Skipped, with the import error, when CuPy does not import.
"""
import ast
import inspect
import re
import types

import numpy as np
import pytest

from tensorlite.testing import simcupy

try:
    import cupy
    _cupy_error = None
except Exception as e:          # not installed, or a CUDA library missing at import time
    cupy, _cupy_error = None, e

pytestmark = pytest.mark.skipif(cupy is None, reason=f"CuPy does not import: {_cupy_error!r}")

# Attributes every Python class has, or the stand-in's own plumbing: not part of CuPy's API.
CLASS_PLUMBING = {'__module__', '__qualname__', '__doc__', '__dict__', '__weakref__', '__slots__',
                  '__init__', '__getattr__', '__repr__', '_a', '_np', 'METHODS',
                  'METHOD_SIGNATURES'}

# Where the stand-in is deliberately stricter than CuPy, and why.
STRICTER = {
    'ndarray.__array_ufunc__': "None: NumPy's ufuncs refuse a device array (CuPy's dispatch "
                               "np.exp(x) to cupy.exp); tensorlite calls xp.exp",
}


# ---- what the stand-in models --------------------------------------------------------------------
def _public(namespace, owner_name):
    """Public names of a module or class namespace, without imported modules."""
    names = []
    for name, value in vars(namespace).items():
        if name.startswith('_'):
            continue
        if isinstance(value, types.ModuleType) and not value.__name__.startswith(owner_name + '.'):
            continue                    # numpy, sys, ... imported by the stand-in
        names.append(name)
    return names


def _modelled(module=simcupy, prefix=''):
    """(dotted name, stand-in object) for each CuPy name the stand-in models, with submodules."""
    found = []
    for name in _public(module, simcupy.__name__):
        if module is simcupy and name in simcupy.MACHINERY:
            continue
        value = getattr(module, name)
        found.append((prefix + name, value))
        if isinstance(value, (types.ModuleType, types.SimpleNamespace)):
            found.extend(_modelled(value, f'{prefix}{name}.'))
    return found


MODELLED = _modelled()
# NumPy's re-exported classes (float32, dtype, ...) are checked as one object, not member by member
CLASSES = [(n, v) for n, v in MODELLED if isinstance(v, type) and n not in simcupy.NUMPY_NAMES]
# ndarray's methods reached through __getattr__ (NumPy's, bound to CuPy's signature)
DYNAMIC_METHODS = [('ndarray.' + m, getattr(simcupy.ndarray(np.zeros(2)), m))
                   for m in simcupy.ndarray.METHODS]


def _class_members(cls):
    return [m for m in vars(cls) if m not in CLASS_PLUMBING]


# ---- CuPy's side ---------------------------------------------------------------------------------
def _cupy_object(dotted):
    obj = cupy
    for part in dotted.split('.'):
        if not hasattr(obj, part):
            pytest.fail(f"cupy.{dotted}: the stand-in models it, real CuPy {cupy.__version__} has "
                        f"no {part!r}")
        obj = getattr(obj, part)
    return obj


def _from_docstring(obj):
    """Parameters from the signature Cython embeds in the docstring's first line, e.g.
    `_ndarray_base.swapaxes(self, Py_ssize_t axis1, Py_ssize_t axis2) -> _ndarray_base`."""
    first = (obj.__doc__ or '').strip().splitlines()[0] if obj.__doc__ else ''
    match = re.match(r'^[\w.]+\((.*)\)(\s*->.*)?$', first)
    if not match:
        return None
    text = match.group(1).replace('\\*', '*')
    text = re.sub(r'\b(?:Py_ssize_t|int|bool|str|object|double)\s+(?=\w)', '', text)  # C types
    fn = ast.parse(f'def f({text}): pass').body[0].args
    params = []
    positional = fn.posonlyargs + fn.args
    defaults = [None] * (len(positional) - len(fn.defaults)) + fn.defaults
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = 'POSITIONAL_ONLY' if i < len(fn.posonlyargs) else 'POSITIONAL_OR_KEYWORD'
        params.append((arg.arg, kind, None if default is None else ast.unparse(default)))
    if fn.vararg:
        params.append((fn.vararg.arg, 'VAR_POSITIONAL', None))
    for arg, default in zip(fn.kwonlyargs, fn.kw_defaults):
        params.append((arg.arg, 'KEYWORD_ONLY', None if default is None else ast.unparse(default)))
    if fn.kwarg:
        params.append((fn.kwarg.arg, 'VAR_KEYWORD', None))
    if params and params[0][0] == 'self':
        params = params[1:]
    return params


def _default_text(value):
    if value is inspect.Parameter.empty:
        return None
    return value.__name__ if isinstance(value, type) else repr(value)


def _from_inspect(obj):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind.name, _default_text(p.default))
            for p in signature.parameters.values() if p.name != 'self']


def cupy_parameters(obj):
    """(parameters, source): source is 'inspect' or 'docstring'."""
    params = _from_inspect(obj)
    if params is not None:
        return params, 'inspect'
    params = _from_docstring(obj)
    if params is not None:
        return params, 'docstring'
    pytest.fail(f"{obj!r}: real CuPy gives neither inspect.signature nor a docstring signature")


def _describe(params):
    return '(' + ', '.join(n + ('' if d is None else f'={d}') + f' [{k}]'
                           for n, k, d in params) + ')'


def assert_same_signature(dotted, ours, theirs):
    mine = _from_inspect(ours)
    real, source = cupy_parameters(theirs)
    mine_names = {n for n, _, _ in mine}
    real_names = {n for n, _, _ in real}
    unknown = sorted(mine_names - real_names)
    assert not unknown, (f"cupy.{dotted}: the stand-in accepts {unknown}, which real CuPy does not "
                         f"(CuPy's, from {source}: {_describe(real)})")
    assert mine == real, (f"cupy.{dotted}: signatures differ\n  stand-in {_describe(mine)}\n"
                          f"  CuPy     {_describe(real)}  (from {source})")


# ---- the checks ----------------------------------------------------------------------------------
def test_enumeration_covers_the_declared_tables():
    names = {n for n, _ in MODELLED}
    declared = (set(simcupy.NUMPY_NAMES) | set(simcupy.FUNCTIONS) | set(simcupy.CREATION)
                | set(simcupy.UFUNCS))
    assert declared <= names
    assert all(hasattr(simcupy, m) for m in simcupy.MACHINERY)


@pytest.mark.parametrize('name', simcupy.NUMPY_NAMES)
def test_numpy_reexport_is_cupys(name):
    """CuPy re-exports NumPy's dtypes and constants unchanged: the same object (or value)."""
    theirs, ours = _cupy_object(name), getattr(simcupy, name)
    same = theirs is ours or (isinstance(ours, float) and (ours == theirs or
                                                          (np.isnan(ours) and np.isnan(theirs))))
    assert same, f"cupy.{name} is {theirs!r}, the stand-in's is {ours!r}"


CALLABLES = [(n, v) for n, v in MODELLED
             if callable(v) and not isinstance(v, type) and n not in simcupy.NUMPY_NAMES]


@pytest.mark.parametrize('name,ours', CALLABLES, ids=[n for n, _ in CALLABLES])
def test_function_signature(name, ours):
    theirs = _cupy_object(name)
    if isinstance(ours, simcupy.ufunc):
        assert isinstance(theirs, cupy.ufunc), f"cupy.{name} is not a ufunc in real CuPy"
    assert_same_signature(name, ours, theirs)


@pytest.mark.parametrize('name,ours', DYNAMIC_METHODS, ids=[n for n, _ in DYNAMIC_METHODS])
def test_array_method_signature(name, ours):
    assert_same_signature(name, ours, _cupy_object(name))


CLASS_MEMBERS = [(f'{n}.{m}', cls, m) for n, cls in CLASSES for m in _class_members(cls)]


@pytest.mark.parametrize('name,cls,member', CLASS_MEMBERS, ids=[n for n, _, _ in CLASS_MEMBERS])
def test_class_member(name, cls, member):
    """Attributes and operators must exist on CuPy's class; public methods have its signature
    (dunder methods have the signature Python fixes)."""
    theirs = _cupy_object(name)
    ours = vars(cls)[member]
    if name in STRICTER:
        return
    if ours is None:                  # e.g. __hash__ = None: unhashable in both
        assert theirs is None, f"cupy.{name} is {theirs!r}, the stand-in sets None"
        return
    if isinstance(ours, property) or member.startswith('__'):
        return
    if callable(ours):
        assert_same_signature(name, ours, theirs)


# ---- the check itself: it names what it rejects --------------------------------------------------
def test_a_keyword_cupy_lacks_fails_naming_it():
    with pytest.raises(AssertionError, match=r"cupy\.clip: the stand-in accepts \['min'\]"):
        assert_same_signature('clip', lambda a, a_min, a_max, out=None, *, min=None: None,
                              cupy.clip)


def test_a_default_cupy_lacks_fails():
    with pytest.raises(AssertionError, match=r"cupy\.take_along_axis: signatures differ"):
        assert_same_signature('take_along_axis', lambda a, indices, axis=-1: None,
                              cupy.take_along_axis)


def test_a_name_cupy_lacks_fails_naming_it():
    with pytest.raises(pytest.fail.Exception, match=r"cupy\.ndarray\.no_such_method"):
        _cupy_object('ndarray.no_such_method')


def test_names_added_later_are_enumerated(monkeypatch):
    monkeypatch.setattr(simcupy, 'cumprod', lambda a, axis=None: None, raising=False)
    monkeypatch.setattr(simcupy, 'cuda', types.SimpleNamespace(get_current_stream=lambda: None),
                        raising=False)
    names = {n for n, _ in _modelled()}
    assert {'cumprod', 'cuda', 'cuda.get_current_stream'} <= names
