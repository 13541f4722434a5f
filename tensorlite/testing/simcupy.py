"""A NumPy-backed stand-in for the part of CuPy that tensorlite uses: device 'cuda' without a GPU.

With `TENSORLITE_SIMULATE_CUDA=1`, `tensorlite.backend` takes this module where it would take
`cupy`, and Numba runs the @cuda.jit kernels in its CUDA simulator.  Everything above the backend
then runs exactly the code it runs on a GPU: arrays of device 'cuda' are instances of this module's
`ndarray`, `array_module(x)` returns this module, and every kernel call goes to the CUDA twin.

What it models, because those are the mistakes a GPU run would otherwise be the first to find:

- a separate array type.  `numpy.asarray(x)` on a device array raises TypeError, as CuPy's does:
  data reach the host only through `asnumpy(x)` or `x.get()`;
- no mixing: a NumPy array given to a device function or operator raises TypeError (a host array
  must be moved with `asarray` first).  Python and NumPy scalars are fine, as in CuPy;
- reductions and scalar indexing return 0-d device arrays, not Python numbers;
- memory reaches a Numba kernel only through `__cuda_array_interface__`: Numba's simulator does
  not read that protocol, so `patch_numba_simulator()` teaches it to, by building a NumPy view on
  the pointer, shape, strides and type string the interface gives -- what a real Numba does with
  a real device pointer.

What it does not model:

- asynchrony: every call has finished when it returns, so a missing synchronization never shows;
- memory limits: device memory is host memory, so nothing runs out at GPU sizes;
- streams, events, pinned memory, several devices;
- CuPy's own numerics: results are NumPy's (cuBLAS and CuPy's reductions can differ in the last
  bits) and every function of the module is NumPy's, for the functions listed in `FUNCTIONS`;
- speed: the simulator runs each kernel thread as Python, thousands of times slower than a GPU.

Only CuPy names that tensorlite calls or may call on a device array are here (`FUNCTIONS`,
`UFUNCS`, `ndarray.METHODS`: its `xp.` calls and the array methods of its ops); asking for another
raises AttributeError naming it, so a new call in tensorlite shows up as missing from the stand-in
instead of silently working on the host.  Each takes CuPy's signature, not NumPy's: a keyword only
NumPy accepts raises TypeError.  tests/test_simcupy_api.py checks every public name here, except
`MACHINERY`, against real CuPy (name, signature, keywords) when CuPy imports.
"""
import inspect
import numbers
import sys
import threading

import numpy as np

# NumPy's dtypes and constants, which CuPy re-exports unchanged (cupy.float32 is numpy.float32)
NUMPY_NAMES = ('bool_', 'dtype', 'e', 'finfo', 'float16', 'float32', 'float64', 'iinfo', 'inf',
               'int8', 'int16', 'int32', 'int64', 'intp', 'nan', 'newaxis', 'pi', 'uint8')
for _name in NUMPY_NAMES:
    globals()[_name] = getattr(np, _name)

# The stand-in's own names, which are not CuPy's (every other public name here must be CuPy's)
MACHINERY = ('NUMPY_NAMES', 'MACHINERY', 'FUNCTION_SIGNATURES', 'FUNCTIONS', 'CREATION_SIGNATURES',
             'CREATION', 'UFUNCS', 'SWITCH_INTERVAL', 'host_view', 'patch_numba_simulator')

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
             "a NumPy array explicitly.")


def _host_refused(a, where):
    return TypeError(f"{where}: got a NumPy array (shape {tuple(a.shape)}, dtype {a.dtype}) where a "
                     "device array was expected; move it with cupy.asarray() first")


def _unwrap(obj, where):
    """The NumPy array behind a device array; numbers and slices pass; host arrays are refused."""
    if type(obj) is ndarray:
        return obj._a
    if isinstance(obj, np.ndarray):
        raise _host_refused(obj, where)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where) for o in obj)
    return obj


def _wrap(result):
    """NumPy results become device arrays; NumPy scalars become 0-d device arrays, as in CuPy."""
    if isinstance(result, np.ndarray):
        return ndarray(result)
    if isinstance(result, np.generic):
        return ndarray(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    return result


def _device_call(fn, name, args, kwargs):
    out = kwargs.get('out')
    result = fn(*_unwrap(args, name), **{k: _unwrap(v, name) for k, v in kwargs.items()})
    if type(out) is ndarray and result is out._a:
        return out
    return _wrap(result)


class ndarray:
    """A device array: a NumPy array that only this module's functions may touch."""
    __slots__ = ('_a', '__weakref__')
    __array_ufunc__ = None           # NumPy's ufuncs and operators refuse it (no silent host work)

    # Methods CuPy's ndarray has and tensorlite calls, with CuPy's signatures (without self; from
    # CuPy 14.2's docstrings, checked by tests/test_simcupy_api.py); each runs NumPy's on the
    # wrapped array after the call is bound to CuPy's signature.
    METHOD_SIGNATURES = {
        'all': lambda axis=None, out=None, keepdims=False: None,
        'any': lambda axis=None, out=None, keepdims=False: None,
        'argmax': lambda axis=None, out=None, dtype=None, keepdims=False: None,
        'argmin': lambda axis=None, out=None, dtype=None, keepdims=False: None,
        'astype': lambda dtype, order='K', casting=None, subok=None, copy=True: None,
        'copy': lambda order='C': None,
        'cumsum': lambda axis=None, dtype=None, out=None: None,
        'fill': lambda value: None,
        'max': lambda axis=None, out=None, keepdims=False: None,
        'mean': lambda axis=None, dtype=None, out=None, keepdims=False: None,
        'min': lambda axis=None, out=None, keepdims=False: None,
        'nonzero': lambda: None,
        'prod': lambda axis=None, dtype=None, out=None, keepdims=None: None,
        'ravel': lambda order='C': None,
        'repeat': lambda repeats, axis=None: None,
        'reshape': lambda *shape, order='C', copy=None: None,
        'squeeze': lambda axis=None: None,
        'std': lambda axis=None, dtype=None, out=None, ddof=0, keepdims=False: None,
        'sum': lambda axis=None, dtype=None, out=None, keepdims=False: None,
        'swapaxes': lambda axis1, axis2: None,
        'take': lambda indices, axis=None, out=None: None,
        'transpose': lambda *axes: None,
        'var': lambda axis=None, dtype=None, out=None, ddof=0, keepdims=False: None,
        'view': lambda dtype=None, type=None: None,
    }
    METHODS = tuple(METHOD_SIGNATURES)

    def __init__(self, array):
        self._a = array

    def __getattr__(self, name):
        if name in ndarray.METHODS:
            return _cupy_signed(getattr(self._a, name), f'ndarray.{name}',
                                _METHOD_SIGNATURES[name])
        raise AttributeError(f"the simulated CuPy ndarray does not model .{name} (see "
                             "tensorlite/testing/simcupy.py)")

    # ---- attributes -------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    @property
    def base(self):
        """None for an array that owns its memory, else (as in CuPy) the array it views."""
        return None if self._a.base is None else _wrap(self._a.base)

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {'shape': a.shape, 'typestr': a.dtype.str,
                'data': (a.__array_interface__['data'][0], not a.flags.writeable),
                'strides': None if a.flags.c_contiguous else a.strides, 'version': 3}

    # ---- host transfers ---------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order='C', out=None, blocking=True):
        """A host (NumPy) copy (calls are synchronous here: stream and blocking change nothing)."""
        return asnumpy(self, stream=stream, order=order, out=out, blocking=blocking)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        return repr(self._a) + '  # on the simulated device'

    # ---- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, 'ndarray.__getitem__')])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, 'ndarray.__setitem__')] = _unwrap(value, 'ndarray.__setitem__')


def _operator(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _host_refused(other, name)
        if not (type(other) is ndarray or isinstance(other, (numbers.Number, np.generic))):
            return NotImplemented
        result = op(self._a, _unwrap(other, name))
        return self if result is self._a else _wrap(result)
    method.__name__ = name
    return method


for _name in ('add', 'sub', 'mul', 'truediv', 'floordiv', 'mod', 'pow', 'matmul', 'and', 'or',
              'xor', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'):
    for _form in (f'__{_name}__', f'__r{_name}__', f'__i{_name}__'):
        # CuPy's ndarray has no __imatmul__ (`a @= b` rebinds a to a new array there)
        if hasattr(np.ndarray, _form) and _form != '__imatmul__':
            setattr(ndarray, _form, _operator(_form))
for _form in ('__neg__', '__pos__', '__abs__', '__invert__'):
    setattr(ndarray, _form, (lambda op: lambda self: _wrap(op(self._a)))(getattr(np.ndarray, _form)))
ndarray.__hash__ = None
_METHOD_SIGNATURES = {name: inspect.signature(f) for name, f in ndarray.METHOD_SIGNATURES.items()}


# ---- the module's functions ---------------------------------------------------------------------------
# Functions of CuPy that tensorlite calls on device arrays, each NumPy's on the wrapped arrays, with
# CuPy's signature (CuPy 14.2's, checked by tests/test_simcupy_api.py).  A call is bound to CuPy's
# signature before NumPy runs, so what CuPy refuses (a NumPy-only keyword such as clip's min=, an
# argument NumPy defaults and CuPy requires such as take_along_axis's axis) raises TypeError here.
# A keyword CuPy has and NumPy lacks (argmax's dtype=) still fails, in NumPy: stricter, not looser.
FUNCTION_SIGNATURES = {
    'argmax': lambda a, axis=None, dtype=None, out=None, keepdims=False: None,
    'broadcast_to': lambda array, shape: None,
    'clip': lambda a, a_min, a_max, out=None: None,
    'concatenate': lambda tup, axis=0, out=None, *, dtype=None, casting='same_kind': None,
    'copyto': lambda dst, src, casting='same_kind', where=None: None,
    'einsum': lambda *operands, **kwargs: None,
    'expand_dims': lambda a, axis: None,
    'indices': lambda dimensions, dtype=int: None,
    'matmul': lambda *args, axes=None, axis=None, keepdims=False, casting='same_kind', dtype=None,
    signature=None, order='K', out=None: None,
    'pad': lambda array, pad_width, mode='constant', **kwargs: None,
    'split': lambda ary, indices_or_sections, axis=0: None,
    'stack': lambda tup, axis=0, out=None, *, dtype=None, casting='same_kind': None,
    'take_along_axis': lambda a, indices, axis: None,
    'where': lambda condition, x=None, y=None: None,
    'tri': lambda N, M=None, k=0, dtype=float: None,
}
FUNCTIONS = tuple(FUNCTION_SIGNATURES)
# Creation functions whose arguments are shapes and dtypes, not arrays.
CREATION_SIGNATURES = {
    'arange': lambda start, stop=None, step=1, dtype=None: None,
    'empty': lambda shape, dtype=float, order='C': None,
    'full': lambda shape, fill_value, dtype=None, order='C': None,
    'ones': lambda shape, dtype=float, order='C': None,
    'zeros': lambda shape, dtype=float, order='C': None,
}
CREATION = tuple(CREATION_SIGNATURES)
# Universal functions (called, or used with .at); CuPy's abs, arctan, ... are ufuncs too.
UFUNCS = ('add', 'subtract', 'multiply', 'true_divide', 'maximum', 'minimum', 'exp', 'log', 'tanh',
          'equal', 'not_equal', 'less', 'less_equal', 'greater', 'greater_equal', 'logical_and',
          'logical_or', 'logical_not', 'negative', 'power', 'abs', 'arctan', 'floor', 'isfinite',
          'sign', 'sqrt')


def _cupy_signed(fn, name, signature_of):
    """`fn` (NumPy's) on the wrapped arrays, taking only the arguments CuPy's signature binds;
    `signature_of` is that signature or a function that has it."""
    signature = (signature_of if isinstance(signature_of, inspect.Signature)
                 else inspect.signature(signature_of))

    def device_function(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"cupy.{name}{signature}: {e}") from None
        return _device_call(fn, name, args, kwargs)
    device_function.__name__ = device_function.__qualname__ = name.rpartition('.')[2]
    device_function.__doc__ = f"cupy.{name}, simulated by numpy's on the wrapped arrays."
    device_function.__signature__ = signature
    return device_function


class ufunc:
    """A universal function: callable, and `.at` for unbuffered in-place updates (add.at)."""

    def __init__(self, name):
        self.__name__ = name
        self._np = getattr(np, name)
        # CuPy's documented ufunc signature: no where=, order=, subok= (NumPy's ufuncs take them)
        inputs = ['x'] if self._np.nin == 1 else [f'x{i + 1}' for i in range(self._np.nin)]
        P = inspect.Parameter
        self.__signature__ = inspect.Signature(
            [P(x, P.POSITIONAL_ONLY) for x in inputs] +
            [P('out', P.POSITIONAL_OR_KEYWORD, default=None),
             P('casting', P.KEYWORD_ONLY, default='same_kind'),
             P('dtype', P.KEYWORD_ONLY, default=None)])

    def __call__(self, *args, **kwargs):
        try:
            self.__signature__.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"cupy.{self.__name__}{self.__signature__}: {e}") from None
        return _device_call(self._np, self.__name__, args, kwargs)

    def at(self, a, indices, b=None):
        where = f'{self.__name__}.at'
        if type(a) is not ndarray:
            raise TypeError(f"{where}: expected a device array to update, got {type(a).__name__}")
        args = (indices,) if b is None else (indices, b)
        self._np.at(a._a, *_unwrap(args, where))

    def __repr__(self):
        return f"<simulated ufunc '{self.__name__}'>"


for _name, _signature in {**FUNCTION_SIGNATURES, **CREATION_SIGNATURES}.items():
    globals()[_name] = _cupy_signed(getattr(np, _name), _name, _signature)
for _name in UFUNCS:
    globals()[_name] = ufunc(_name)


def _like(np_fn, first):
    # CuPy's signature (subok must be None there; full_like's fill_value comes second)
    P = inspect.Parameter
    named = [P(first, P.POSITIONAL_OR_KEYWORD)]
    if np_fn is np.full_like:
        named.append(P('fill_value', P.POSITIONAL_OR_KEYWORD))
    signature = inspect.Signature(
        named + [P(k, P.POSITIONAL_OR_KEYWORD, default=d)
                 for k, d in (('dtype', None), ('order', 'K'), ('subok', None), ('shape', None))])

    def like(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        named = dict(bound.arguments)
        a, subok = named.pop(first), named.pop('subok')
        if type(a) is not ndarray:
            raise TypeError(f"{np_fn.__name__}: expected a device array, got {type(a).__name__}")
        if subok is not None:
            raise TypeError(f"{np_fn.__name__}: subok is not supported (CuPy: None only)")
        return ndarray(np_fn(a._a, **_unwrap(named, np_fn.__name__)))
    like.__name__ = like.__qualname__ = np_fn.__name__
    like.__signature__ = signature
    return like


empty_like, zeros_like, ones_like, full_like = (
    _like(np.empty_like, 'prototype'), _like(np.zeros_like, 'a'), _like(np.ones_like, 'a'),
    _like(np.full_like, 'a'))


def array(obj, dtype=None, copy=True, order='K', subok=False, ndmin=0, *, blocking=False):
    """A new device array from a device array, a host array, or (nested) Python numbers (every
    copy is synchronous here: blocking changes nothing)."""
    if type(obj) is ndarray:
        return ndarray(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and any(type(o) is ndarray for o in obj):
        stacked = _device_call(np.stack, 'array', (obj,), {})
        return stacked if dtype is None else stacked.astype(dtype)
    return ndarray(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """`a` itself when it is a device array of that dtype (and copy is not True); else a device
    copy (host -> device; copy=False then raises ValueError, as in CuPy)."""
    if type(a) is ndarray:
        if copy is not True and (dtype is None or a.dtype == np.dtype(dtype)):
            return a
        if copy is False:
            raise ValueError("asarray(copy=False): a copy is needed to change the dtype")
        return ndarray(np.array(a._a, dtype=dtype, order=order or 'K', copy=True))
    if copy is False:
        raise ValueError("asarray(copy=False): a host array cannot become a device array without "
                         "a copy")
    return ndarray(np.array(a, dtype=dtype, order=order or 'K', copy=True))


def ascontiguousarray(a, dtype=None):
    if type(a) is not ndarray:
        raise TypeError(f"ascontiguousarray: expected a device array, got {type(a).__name__}")
    c = np.ascontiguousarray(a._a, dtype=dtype)
    return a if c is a._a else ndarray(c)


def asnumpy(a, stream=None, order='C', out=None, *, blocking=True):
    """A host copy of a device array (a host array passes through, as in CuPy); stream and
    blocking change nothing here, where every call is synchronous."""
    if type(a) is ndarray:
        host = np.array(a._a, order=order, copy=True)
    else:
        host = np.asarray(a, order=order)
    if out is not None:
        out[...] = host
        return out
    return host


def get_array_module(*args):
    """This module when any argument is a device array, else numpy."""
    return sys.modules[__name__] if any(type(a) is ndarray for a in args) else np


def __getattr__(name):
    raise AttributeError(f"the simulated CuPy does not model cupy.{name} (tensorlite never called it "
                         "when this stand-in was written; add it to tensorlite/testing/simcupy.py)")


# ---- the hand-off to Numba ----------------------------------------------------------------------------
class _InterfaceView:
    """Holds a CUDA array interface under the name of NumPy's host protocol, and its owner."""

    def __init__(self, owner, iface):
        self.owner = owner
        self.__array_interface__ = {'shape': iface['shape'], 'typestr': iface['typestr'],
                                    'data': iface['data'], 'strides': iface['strides'],
                                    'version': 3}


def host_view(obj):
    """A NumPy array on the memory `obj.__cuda_array_interface__` describes (no copy)."""
    return np.asarray(_InterfaceView(obj, obj.__cuda_array_interface__))


_simulator_patched = False

# The simulator runs a block's threads as Python threads and waits for them at a barrier by polling
# while holding the GIL: with Python's default 5 ms switch interval a barrier round costs 7-23 ms.
# During a launch the interval is 50 us (layer_norm on 160 rows: 55 s -> 4 s).
SWITCH_INTERVAL = 5e-5


def _exposes_interface(a):
    return not isinstance(a, np.ndarray) and hasattr(type(a), '__cuda_array_interface__')


def patch_numba_simulator():
    """Three changes to Numba's CUDA simulator (0.59 to at least 0.68), made once:

    - the hand-off: kernel arguments that expose `__cuda_array_interface__` are accepted.  A real
      Numba turns such an argument into a device array on its pointer; the simulator knows only
      NumPy arrays, so each is replaced by `host_view(arg)` before the launch;
    - launches run with a short thread switch interval (SWITCH_INTERVAL);
    - `cuda.shared.array` is made atomic.  The simulator allocates a block's shared array when the
      first of its threads asks, keyed by the calling line, with no lock: two threads can both find
      no array and each allocate one, and then a block reduction sums half of its threads'
      values.  (One CI run saw depthwise_bwd_weight's twin wrong in every element one block
      computed; 300 reruns did not reproduce it, so this race is a likely cause, not a proven
      one.)  The same allocation, under a lock.

    Needs the simulator (NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported)."""
    global _simulator_patched
    if _simulator_patched:
        return
    from numba.core import config
    if not config.ENABLE_CUDASIM:
        raise RuntimeError("the simulated CUDA device needs Numba's CUDA simulator, but it is off: "
                           "set NUMBA_ENABLE_CUDASIM=1 (or TENSORLITE_SIMULATE_CUDA=1) before "
                           "numba is imported")
    from numba.cuda.simulator.kernel import FakeCUDAKernel
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.core import types as numba_types
    from numba.np import numpy_support
    launch = FakeCUDAKernel.__call__
    allocate = FakeCUDAShared.array
    lock = threading.Lock()

    def call(kernel, *args):
        args = tuple(host_view(a) if _exposes_interface(a) else a for a in args)
        if kernel._device:                  # a device function called from a kernel
            return launch(kernel, *args)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            return launch(kernel, *args)
        finally:
            sys.setswitchinterval(interval)

    def shared_array(shared, shape, dtype):
        if shape == 0:                      # dynamic shared memory: one fixed buffer, no race
            return allocate(shared, shape, dtype)
        caller = sys._getframe(1)           # the kernel line asking, as the simulator keys it
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            array = shared._allocations.get(key)
            if array is None:
                if isinstance(dtype, numba_types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                array = shared._allocations[key] = np.empty(shape, dtype)
        return array

    FakeCUDAKernel.__call__ = call
    FakeCUDAShared.array = shared_array
    _simulator_patched = True
