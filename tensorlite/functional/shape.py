"""Shape ops: reshape, broadcast, transpose, permute, cat, split, repeat, pad, indexing, casting.

None of these compute anything; their backward moves the gradient back to where each element
came from, always with other Functions of this file, so every one of them has a second derivative.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import normalize_dim, normalize_dims, xp_of


# ---- reshape and broadcasting ------------------------------------------------------------------

class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} "
                             f"({x.size} elements) to {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, gy):
        return reshape(gy, ctx.in_shape), None


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    """`x.reshape(2, -1)` or `reshape(x, (2, -1))`; a view when NumPy can make one."""
    shape = _shape_args(shape)
    if tuple(x.shape) == shape:
        return x
    return Reshape.apply(x, shape)


view = reshape


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return xp_of(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"broadcast_to: shape {tuple(x.shape)} cannot be broadcast to "
                             f"{tuple(shape)}") from None

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.in_shape), None


class SumTo(Function):
    """Sum a broadcast gradient back to `shape`: over the leading dims broadcasting added and over
    the dims where `shape` has size 1."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                          if s == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy, ctx.in_shape), None


def broadcast_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return BroadcastTo.apply(x, shape)


def sum_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return SumTo.apply(x, shape)


def expand(x, *sizes):
    """PyTorch's expand: -1 keeps a size; new leading dims may be added."""
    sizes = _shape_args(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes given for a tensor with {x.ndim} dims "
                         f"(shape {tuple(x.shape)})")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    s = normalize_dim(start_dim, x.ndim, 'flatten')
    e = normalize_dim(end_dim, x.ndim, 'flatten')
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = tuple(x.shape[:s]) + (int(np.prod(x.shape[s:e + 1])),) + tuple(x.shape[e + 1:])
    return reshape(x, shape)


def squeeze(x, dim=None):
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = normalize_dims(dim, x.ndim, 'squeeze')
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return reshape(x, shape)


def unsqueeze(x, dim):
    d = normalize_dim(dim, x.ndim + 1, 'unsqueeze')
    return reshape(x, tuple(x.shape[:d]) + (1,) + tuple(x.shape[d:]))


# ---- transposition -------------------------------------------------------------------------------

class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, gy):
        return permute(gy, *np.argsort(ctx.dims).tolist()), None


def permute(x, *dims):
    dims = _shape_args(dims)
    if len(dims) != x.ndim:
        raise ValueError(f"permute: {len(dims)} dims given for a tensor with {x.ndim} dims "
                         f"(shape {tuple(x.shape)})")
    dims = tuple(normalize_dim(d, x.ndim, 'permute') for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims)


def transpose(x, dim0, dim1):
    d0 = normalize_dim(dim0, x.ndim, 'transpose')
    d1 = normalize_dim(dim1, x.ndim, 'transpose')
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, *dims)


# ---- joining and splitting -------------------------------------------------------------------------

class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        ctx.sizes = [x.shape[dim] for x in xs]
        return xp_of(xs[0]).concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, gy):
        return (None,) + tuple(split(gy, ctx.sizes, ctx.dim))


def cat(tensors, dim=0):
    """Join tensors along an existing dim (PyTorch's torch.cat)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ref = tensors[0]
    d = normalize_dim(dim, ref.ndim, 'cat')
    for k, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape))
                                     if i != d):
            raise ValueError(f"cat: tensor {k} has shape {tuple(t.shape)}, tensor 0 has shape "
                             f"{tuple(ref.shape)}; all sizes but dim {d} must match")
    if len(tensors) == 1:
        return tensors[0]
    return Cat.apply(d, *tensors)


concatenate = cat


def stack(tensors, dim=0):
    """Join tensors of one shape along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    for k, t in enumerate(tensors):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise ValueError(f"stack: tensor {k} has shape {tuple(t.shape)}, tensor 0 has shape "
                             f"{tuple(tensors[0].shape)}; all must match")
    d = normalize_dim(dim, tensors[0].ndim + 1, 'stack')
    return cat([unsqueeze(t, d) for t in tensors], d)


class Split(Function):
    @staticmethod
    def forward(ctx, x, sizes, dim):
        ctx.dim = dim
        bounds = np.cumsum(sizes)[:-1].tolist()
        return tuple(xp_of(x).split(x, bounds, axis=dim))

    @staticmethod
    def backward(ctx, *gys):
        return cat(gys, ctx.dim), None, None


def split(x, split_size_or_sections, dim=0):
    """PyTorch's split: an int is the size of every piece (the last may be smaller); a list gives
    each piece's size."""
    d = normalize_dim(dim, x.ndim, 'split')
    n = x.shape[d]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        sizes = sizes or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)} but dim {d} has size {n}")
    if len(sizes) == 1:
        return (x,)
    return Split.apply(x, sizes, d)


def chunk(x, chunks, dim=0):
    """PyTorch's chunk: pieces of ceil(n / chunks) along dim (so possibly fewer than `chunks`)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[normalize_dim(dim, x.ndim, 'chunk')]
    if n == 0:                                  # as PyTorch: `chunks` empty pieces
        return split(x, [0] * chunks, dim)
    return split(x, -(-n // chunks), dim)


class Repeat(Function):
    """PyTorch's repeat (NumPy's tile): the whole tensor copied `reps[i]` times along dim i."""

    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape = x.shape
        ctx.reps = reps
        return xp_of(x).tile(x, reps)

    @staticmethod
    def backward(ctx, gy):
        lead = len(ctx.reps) - len(ctx.in_shape)
        shape = (1,) * lead + tuple(ctx.in_shape)
        # (r0, s0, r1, s1, ...): each copy of the input along its own axis, then summed away
        inter = []
        for r, s in zip(ctx.reps, shape):
            inter += [r, s]
        g = reshape(gy, tuple(inter)).sum(dim=tuple(range(0, len(inter), 2)))
        return reshape(g, ctx.in_shape), None


def repeat(x, *sizes):
    reps = _shape_args(sizes)
    if len(reps) < x.ndim:
        raise ValueError(f"repeat: {len(reps)} repeat counts for a tensor with {x.ndim} dims; "
                         "give at least one per dim")
    return Repeat.apply(x, reps)


class Pad(Function):
    """Constant padding in PyTorch's order: (left, right) of the last dim first, then the dim before.
    Negative amounts crop, so the backward of a pad is the pad with every amount negated."""

    @staticmethod
    def forward(ctx, x, pad, value):
        ctx.pad = pad
        xp = xp_of(x)
        widths = [(0, 0)] * x.ndim
        for k in range(len(pad) // 2):
            widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
        grow = [(max(a, 0), max(b, 0)) for a, b in widths]
        crop = tuple(slice(max(-a, 0), s + max(a, 0) + max(b, 0) - max(-b, 0))
                     for (a, b), s in zip(widths, x.shape))
        if any(sl.stop < sl.start for sl in crop):
            raise ValueError(f"pad: {pad} crops more than the size of a dim of shape {tuple(x.shape)}")
        y = xp.pad(x, grow, mode='constant', constant_values=value) if any(map(any, grow)) else x
        return y[crop]

    @staticmethod
    def backward(ctx, gy):
        return pad(gy, tuple(-p for p in ctx.pad)), None, None


def pad(input, pad, mode='constant', value=0.0):
    """F.pad with mode='constant' (the only mode implemented); `pad` as PyTorch orders it."""
    if mode != 'constant':
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented; only 'constant' is")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {len(pad)} pad amounts for a tensor with {input.ndim} dims; give "
                         "pairs (left, right), at most one pair per dim")
    if not any(pad):
        return input
    return Pad.apply(input, pad, value)


# ---- indexing ----------------------------------------------------------------------------------------

def _normalize_key(key, xp):
    """Tensors and lists inside an index become arrays of the right module; ints, slices, None and
    Ellipsis pass through.  Returns (key, advanced) where advanced says NumPy will use advanced
    (copying) indexing, whose gradient needs a scatter-add."""
    items = key if isinstance(key, tuple) else (key,)
    out, advanced = [], False
    for k in items:
        if isinstance(k, Tensor):
            k = k.data
        if isinstance(k, list):
            k = np.asarray(k)
            if k.size == 0:                     # [] selects nothing; NumPy reads it as float64
                k = k.astype(np.intp)
        if hasattr(k, 'dtype') and getattr(k, 'ndim', 0) >= 0 and not isinstance(k, np.generic):
            if k.dtype.kind not in 'iub':
                raise IndexError(f"index arrays must be integer or bool, got dtype {k.dtype}")
            k = xp.asarray(k)
            if k.ndim > 0 or k.dtype.kind == 'b':
                advanced = True
            else:
                k = int(k)
        out.append(k)
    return (tuple(out) if isinstance(key, tuple) or len(out) != 1 else out[0]), advanced


class _SavedArray:
    """Where an index array stood in a key kept on ctx (the array itself is saved for backward)."""

    def __repr__(self):
        return '<saved index array>'


_SAVED_ARRAY = _SavedArray()


def _save_key(ctx, key):
    """Keep an index for backward: its integer and bool arrays through save_for_backward, the rest
    (ints, slices, None, Ellipsis, with a placeholder for each array) as `ctx.key`."""
    items = key if isinstance(key, tuple) else (key,)
    arrays = [k for k in items if _is_array(k)]
    if not arrays:                              # basic indexing: nothing to save
        ctx.key = key
        return
    template = tuple(_SAVED_ARRAY if _is_array(k) else k for k in items)
    ctx.key = template if isinstance(key, tuple) else template[0]
    ctx.save_for_backward(*arrays)


def _is_array(k):
    return isinstance(k, np.ndarray) or backend.is_cupy_array(k)


def _saved_key(ctx):
    """The key `_save_key` kept, with its arrays back in place."""
    saved = ctx.saved_tensors
    if not saved:
        return ctx.key
    arrays = iter([t.data for t in saved])
    items = ctx.key if isinstance(ctx.key, tuple) else (ctx.key,)
    key = tuple(next(arrays) if k is _SAVED_ARRAY else k for k in items)
    return key if isinstance(ctx.key, tuple) else key[0]


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, key, advanced):
        ctx.in_shape, ctx.advanced = x.shape, advanced
        _save_key(ctx, key)
        try:
            return x[key]
        except IndexError as e:
            raise IndexError(f"getitem: index {key!r} does not fit shape {tuple(x.shape)}: {e}") from None

    @staticmethod
    def backward(ctx, gy):
        return IndexScatter.apply(gy, _saved_key(ctx), ctx.advanced, ctx.in_shape), None, None


class IndexScatter(Function):
    """The adjoint of `x[key]`: zeros of the input shape with `g` added at `key` (summing over
    repeated indices).  Its own adjoint is `g[key]` again."""

    @staticmethod
    def forward(ctx, g, key, advanced, shape):
        ctx.advanced = advanced
        _save_key(ctx, key)
        xp = xp_of(g)
        out = xp.zeros(shape, dtype=g.dtype)
        if advanced:
            xp.add.at(out, key, g)
        else:
            out[key] = g
        return out

    @staticmethod
    def backward(ctx, gg):
        return GetItem.apply(gg, _saved_key(ctx), ctx.advanced), None, None, None


def getitem(x, key):
    """x[key] with ints, slices (with steps), None, Ellipsis, integer arrays and bool masks."""
    key, advanced = _normalize_key(key, xp_of(x.data))
    return GetItem.apply(x, key, advanced)


class IndexPut(Function):
    """out = x with out[key] = value; the gradient of x is zero at key."""

    @staticmethod
    def forward(ctx, x, key, value):
        _save_key(ctx, key)
        ctx.value_shape = value.shape
        y = x.copy()
        try:
            y[key] = value
        except ValueError:
            raise ValueError(f"setitem: a value of shape {tuple(value.shape)} does not fit "
                             f"x[{key!r}] of a tensor with shape {tuple(x.shape)}") from None
        return y

    @staticmethod
    def backward(ctx, gy):
        gx = gv = None
        key = _saved_key(ctx)
        if ctx.needs_input_grad[0]:
            gx = IndexPut.apply(gy, key, Tensor(xp_of(gy.data).zeros((), gy.dtype)))
        if ctx.needs_input_grad[2]:
            g = gy[key]
            extra = len(ctx.value_shape) - g.ndim     # a value may carry leading 1s the slot lacks
            if extra > 0:
                g = reshape(g, (1,) * extra + tuple(g.shape))
            gv = sum_to(g, ctx.value_shape)
        return gx, None, gv


def index_put(x, key, value):
    key, _ = _normalize_key(key, xp_of(x.data))
    if value.dtype != x.dtype:
        value = cast(value, x.dtype)
    return IndexPut.apply(x, key, value)


def _along_dim(xp, index, dim):
    """The full index tuple that reads x[..., index[...], ...] along `dim` at every position of
    `index` (PyTorch's gather semantics; not take_along_axis, which broadcasts a smaller index)."""
    # the sparse grid of np.indices(shape, sparse=True), which CuPy's indices does not offer
    ndim = index.ndim
    grid = [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (ndim - i - 1))
            for i, n in enumerate(index.shape)]
    grid[dim] = index
    return tuple(grid)


class Gather(Function):
    """out[i][j][k] = x[i][index[i][j][k]][k] for dim=1 (PyTorch's gather, NumPy's take_along_axis)."""

    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.dim, ctx.in_shape = dim, x.shape
        ctx.save_for_backward(index)
        return x[_along_dim(xp_of(x), index, dim)]

    @staticmethod
    def backward(ctx, gy):
        (index,) = ctx.saved_tensors
        return ScatterAdd.apply(gy, ctx.dim, index.data, ctx.in_shape), None, None


class ScatterAdd(Function):
    """The adjoint of gather: zeros of `shape`, with g[...] added at the gathered positions."""

    @staticmethod
    def forward(ctx, g, dim, index, shape):
        ctx.dim = dim
        ctx.save_for_backward(index)
        xp = xp_of(g)
        out = xp.zeros(shape, dtype=g.dtype)
        xp.add.at(out, _along_dim(xp, index, dim), g)
        return out

    @staticmethod
    def backward(ctx, gg):
        (index,) = ctx.saved_tensors
        return Gather.apply(gg, ctx.dim, index.data), None, None, None


def gather(input, dim, index):
    """PyTorch's torch.gather; `index` is an integer Tensor or array of the output's shape."""
    idx = index.data if isinstance(index, Tensor) else xp_of(input.data).asarray(index)
    if idx.dtype.kind not in 'iu':
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    d = normalize_dim(dim, input.ndim, 'gather')
    if idx.ndim != input.ndim:
        raise ValueError(f"gather: index has {idx.ndim} dims (shape {tuple(idx.shape)}) but input "
                         f"has {input.ndim} (shape {tuple(input.shape)})")
    if any(i != d and a > b for i, (a, b) in enumerate(zip(idx.shape, input.shape))):
        raise ValueError(f"gather: index shape {tuple(idx.shape)} is larger than input shape "
                         f"{tuple(input.shape)} outside dim {d}")
    return Gather.apply(input, d, idx)




# ---- copies, casts and devices -------------------------------------------------------------------

class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return gy


def clone(x):
    return Clone.apply(x)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return cast(gy, ctx.in_dtype), None


def cast(x, dtype):
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.in_device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, gy):
        return to_device(gy, ctx.in_device), None


def to_device(x, device):
    device = backend.normalize_device(device)
    if x.device == device:
        return x
    backend.xp_for(device)                    # says what is missing before anything is copied
    return ToDevice.apply(x, device)
