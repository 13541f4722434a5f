"""Figures of a run, written as PNG files: learning curves, confusion matrices, attention maps,
optical flow and the temporal diagnostic of several models side by side.

    from tensorlite import plots
    history = fit(model, train, val, optimizer=opt, epochs=10)
    plots.plot_history(history, 'runs/c3d/curves.png')
    plots.plot_confusion_matrix(evaluate(model, val)['confusion_matrix'], 'runs/c3d/confusion.png',
                                class_names=train.dataset.classes)
    _, weights = mha(x, x, x, average_attn_weights=False)        # (N, heads, L, S)
    plots.plot_attention(weights[0], 'attn.png')                  # one panel per head
    plots.plot_attention(weights[0, :, 0], 'cls.png', grid=(T, h, w), frame=clip)   # the class
        # token's attention over T x h x w patches: a row of T heat maps per head, over the frames
    plots.plot_flow(D.clip_flows(clip), 'flow.png', frames=clip)  # rows of frames and flows
    plots.plot_compare(records, 'compare.png')     # temporal_diagnostic of models, and the claims
    plots.plot_experiment(run_experiment('frames'), 'frames.png')  # tensorlite.experiments

matplotlib is an optional extra (`pip install -e ".[plot]"`); it is imported when a function is
called, and without it every plot_ function raises an ImportError saying how to install it (only
`flow_scale`, plain NumPy, works without it).  Figures are drawn on a `matplotlib.figure.Figure`
with its own Agg canvas, never through pyplot, so nothing here touches pyplot's global state (its
current figure, its backend, open windows): safe in scripts, threads and notebooks alike.

Every function takes NumPy arrays or tensorlite Tensors (CuPy arrays and CUDA tensors are copied
to the host), checks its input, renders the PNG into memory and then writes it with
`atomic_write` (a reader sees the old file or the new one, never half of one; a failure while
drawing leaves an existing file untouched).  The path must end in '.png'; missing parent folders
are created.  Each returns the path it wrote, as given.  Every figure is at most MAX_WIDTH
inches (1,950 px) wide whatever its input -- panels narrow or wrap into rows -- with text sized
to be read when the image is shown 1,600 px wide.
"""
import io
import math
import os

import numpy as np

from . import backend
from ._atomic import atomic_write
from .autograd.tensor import Tensor

__all__ = ['plot_history', 'plot_confusion_matrix', 'plot_attention', 'plot_flow', 'flow_scale',
           'plot_compare', 'plot_experiment', 'MATPLOTLIB_MISSING']

MATPLOTLIB_MISSING = 'plots need matplotlib: pip install -e ".[plot]"'
DPI = 100
HISTORY_KEYS = ('epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy')
COMPARE_KEYS = ('model', 'family', 'accuracy', 'reversed_accuracy', 'shuffled_accuracy', 'chance')
COMPARE_BARS = (('accuracy', 'in order'), ('reversed_accuracy', 'reversed'),
                ('shuffled_accuracy', 'shuffled'))
FAMILY_ORDER = ('scene', 'occluded', 'motion', 'order')  # the synthetic families' panels, in order
MAX_ANNOTATED_CLASSES = 30                      # beyond this a confusion matrix's cells get no text
MAX_ATTENTION_PANELS = 64                       # more heat maps than this in one figure: a mistake
MAX_WIDTH = 19.5        # inches: every figure is at most 1,950 px wide (DPI 100), readable at 1,600
MAX_FLOW_PANELS = 64                            # flows in one plot_flow figure
FLOW_PERCENTILE = 99.0  # plot_flow's default colour scale: this percentile of |flow|, not its max
SCENE_CUT_RATIO = 2.0   # a flow whose 99th percentile is over twice every other's: a scene cut
                        # (between two synthetic 'motion' clips: 12.9 px, the other flows <= 4.0)
CLAIM_MARK = {True: '\u2713', False: '\u2717'}     # a tick, a cross
CLAIM_MARKER = {True: '$\u2713$', False: '$\u2717$'}
CLAIM_COLOUR = {True: 'darkgreen', False: 'crimson'}


# ---- shared plumbing ----------------------------------------------------------------------------

def _matplotlib():
    """(Figure, FigureCanvasAgg), or the ImportError that says how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(MATPLOTLIB_MISSING) from err
    return Figure, FigureCanvasAgg


def _new_figure(width, height):
    """A constrained-layout Figure of width x height inches on its own Agg canvas (no pyplot)."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _check_path(path, fn):
    try:
        text = os.fspath(path)
    except TypeError:
        raise TypeError(f"{fn}: path must be a str or os.PathLike ending in '.png', "
                        f"got {type(path).__name__}") from None
    if not isinstance(text, str) or not text.lower().endswith('.png'):
        raise ValueError(f"{fn}: path must end in '.png' (the file is a PNG), got {text!r}")
    return text


def _save(fig, path):
    """Render `fig` to PNG bytes in memory, then write them atomically to `path`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=DPI)
    text = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(text))
    os.makedirs(directory, exist_ok=True)
    with atomic_write(text, suffix='.png') as tmp:
        with open(tmp, 'wb') as f:
            f.write(buffer.getvalue())
    return path


def _as_array(x, name, fn):
    """A Tensor, NumPy or CuPy array, or nested list -> a NumPy array of real numbers."""
    if isinstance(x, Tensor):
        x = x.data
    try:
        array = backend.as_numpy(x)
    except Exception as err:                  # a ragged list, an object numpy cannot take
        raise TypeError(f"{fn}: {name} must be an array or Tensor of numbers, "
                        f"got {type(x).__name__}") from err
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{fn}: {name} must hold integers or floats, got dtype {array.dtype}")
    return array


def _as_image(frames, name, fn):
    """(..., H, W, 3) or (..., H, W) frames, uint8 [0, 255] or float [0, 1] -> float [0, 1] RGB."""
    frames = _as_array(frames, name, fn)
    if frames.dtype == np.uint8:
        frames = frames.astype(np.float32) / 255.0
    elif np.issubdtype(frames.dtype, np.floating):
        frames = np.clip(np.nan_to_num(frames.astype(np.float32)), 0.0, 1.0)
    else:
        raise TypeError(f"{fn}: {name} must be uint8 (0..255) or float (0..1), "
                        f"got dtype {frames.dtype}")
    return frames


def _number(value):
    """A history or record value -> float, None and non-finite values -> NaN (a gap in a line)."""
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


# ---- learning curves ----------------------------------------------------------------------------

def plot_history(history, path):
    """Learning curves from `tensorlite.train.fit`'s history: a loss panel (train and validation
    loss, with the learning rate on a second axis when the rows' 'lr' changes during the run; a
    constant rate is given in the panel's title) and an accuracy panel (train and validation
    top-1).  Epoch ticks are whole epochs.

    history: a list of dicts, one per epoch, each with the keys epoch, train_loss,
    train_accuracy, val_loss, val_accuracy (and optionally lr); a value may be None (no
    validation loader, no class-index target), which leaves a gap.  Returns `path`.
    """
    fn = 'plot_history'
    _check_path(path, fn)
    _matplotlib()
    if isinstance(history, dict) or not isinstance(history, (list, tuple)):
        raise TypeError(f"{fn}: history must be a list of dicts (fit's history), "
                        f"got {type(history).__name__}")
    if not history:
        raise ValueError(f"{fn}: history is empty: there is no epoch to plot")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise TypeError(f"{fn}: history[{i}] must be a dict, got {type(row).__name__}")
        missing = [k for k in HISTORY_KEYS if k not in row]
        if missing:
            raise ValueError(f"{fn}: history[{i}] lacks the key(s) {missing}; it has "
                             f"{sorted(row)}, and every row needs {list(HISTORY_KEYS)}")
    try:
        series = {k: np.array([_number(row[k]) for row in history]) for k in HISTORY_KEYS}
        lr = np.array([_number(row.get('lr')) for row in history])
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: history values must be numbers or None ({err})") from None
    epochs = series['epoch']
    if np.isnan(epochs).any():
        raise ValueError(f"{fn}: every row needs a numeric epoch, got "
                         f"{[row['epoch'] for row in history]}")

    from matplotlib.ticker import MaxNLocator
    fig = _new_figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    # markers as well as lines: a run of one epoch, or one between two gaps, is still visible
    for ax, kind in ((loss_ax, 'loss'), (acc_ax, 'accuracy')):
        drawn = False
        for split, colour in (('train', 'tab:blue'), ('val', 'tab:orange')):
            values = series[f'{split}_{kind}']
            if not np.isnan(values).all():
                ax.plot(epochs, values, marker='o', markersize=3, color=colour,
                        label='train' if split == 'train' else 'validation')
                drawn = True
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # no half epochs
        ax.set_xlabel('epoch')
        ax.set_ylabel(kind)
        ax.set_title(kind)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(loc='best', fontsize=8)
        else:
            ax.text(0.5, 0.5, f'no {kind} recorded', ha='center', va='center',
                    transform=ax.transAxes, color='gray')
    acc_values = np.concatenate([series['train_accuracy'], series['val_accuracy']])
    acc_values = acc_values[~np.isnan(acc_values)]
    if acc_values.size and acc_values.min() >= 0 and acc_values.max() <= 1:
        acc_ax.set_ylim(-0.02, 1.02)              # accuracies are fractions: show the whole range
    rates = lr[~np.isnan(lr)]
    if rates.size and rates.min() == rates.max():
        loss_ax.set_title(f'loss (learning rate {rates[0]:.3g} throughout)')
    elif rates.size:
        lr_ax = loss_ax.twinx()
        lr_ax.plot(epochs, lr, color='gray', linestyle=':', drawstyle='steps-post', label='lr')
        if rates.min() > 0 and rates.max() / rates.min() > 10:
            lr_ax.set_yscale('log')               # a step schedule spans decades
        lr_ax.set_ylabel('learning rate', color='gray')
        lr_ax.tick_params(axis='y', colors='gray')
    return _save(fig, path)


# ---- confusion matrix ---------------------------------------------------------------------------

def plot_confusion_matrix(matrix, path, class_names=None, normalize=True):
    """A (K, K) confusion matrix of counts (rows = true class, columns = predicted, as
    `tensorlite.train.confusion_matrix` and `evaluate(...)['confusion_matrix']` give it) as a heat
    map with every cell annotated (for K <= 30).

    normalize=True divides each row by its total, so a cell is the fraction of that true class
    predicted as that column (a class with no sample keeps a row of zeros) and the cell shows
    the fraction with the count beneath it; normalize=False colours and annotates the counts.
    class_names: K labels for the axes, default 0..K-1.  The title gives the overall accuracy
    (trace / total).  Returns `path`.
    """
    fn = 'plot_confusion_matrix'
    _check_path(path, fn)
    _matplotlib()
    counts = _as_array(matrix, 'matrix', fn).astype(np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"{fn}: matrix must be square (K, K) with K >= 1 (rows = true class), "
                         f"got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"{fn}: matrix must hold finite counts >= 0, got min {np.nanmin(counts)} "
                         f"and {int((~np.isfinite(counts)).sum())} non-finite value(s)")
    K = counts.shape[0]
    if class_names is None:
        names = [str(k) for k in range(K)]
    else:
        if isinstance(class_names, str):
            raise TypeError(f"{fn}: class_names must be a sequence of {K} names, got a str")
        names = [str(n) for n in class_names]
        if len(names) != K:
            raise ValueError(f"{fn}: class_names must have one name per class: K = {K}, "
                             f"got {len(names)} names")
    totals = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) \
        if normalize else counts
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)

    side = min(max(4.0, 0.55 * K + 2.0), MAX_WIDTH - 1.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(shown, cmap='Blues', vmin=0.0, vmax=vmax, interpolation='nearest')
    fig.colorbar(image, ax=ax, label='fraction of the true class' if normalize else 'count',
                 shrink=0.8)
    ax.set_xticks(range(K), names, rotation=45 if K > 4 else 0, ha='right' if K > 4 else 'center')
    ax.set_yticks(range(K), names)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    total = counts.sum()
    accuracy = np.trace(counts) / total if total else math.nan
    ax.set_title(f'confusion matrix ({int(total)} samples, accuracy {accuracy:.3f})'
                 if total else 'confusion matrix (no samples)')
    if K <= MAX_ANNOTATED_CLASSES:
        fontsize = 9 if K <= 10 else 7 if K <= 20 else 5
        for i in range(K):
            for j in range(K):
                value = shown[i, j]
                count = int(round(counts[i, j]))
                text = (f'{value:.2f}\n({count})' if K <= 10 else f'{value:.2f}') \
                    if normalize else f'{count}'
                # dark text on light cells, white on dark ones
                colour = 'white' if value > 0.6 * vmax else 'black'
                ax.text(j, i, text, ha='center', va='center', color=colour, fontsize=fontsize)
    return _save(fig, path)


# ---- attention ----------------------------------------------------------------------------------

def plot_attention(weights, path, frame=None, grid=None, title=None):
    """Attention maps.

    Without `grid`: weights (L, S) -- queries by keys, as `nn.MultiheadAttention` returns them
    for one clip (index out the batch) -- is one heat map; (heads, L, S) one heat map per head.

    With grid=(T, h, w): the keys are T x h x w patch tokens in that (time, row, column) order,
    optionally preceded by one class token (S = T*h*w + 1, the class token first, as
    TimeSformer and tensorlite's space-time layers place it; its weight is printed in the row's
    label).  weights is one query's attention (S,), several queries' (L, S) or per head
    (heads, L, S); each query (of each head) becomes one row of T heat maps of h x w, one per
    frame, on one colour scale per row.  `frame` -- (T', H, W, 3) or (T', H, W) frames, uint8 or
    float in [0, 1], with T' a multiple of T (a tubelet of T'/T frames per token shows its first
    frame) -- puts the frames under the heat maps, each upsampled to H x W.  A figure is limited
    to 64 panels: index out the queries or heads you want.  Returns `path`.
    """
    fn = 'plot_attention'
    _check_path(path, fn)
    _matplotlib()
    w = _as_array(weights, 'weights', fn).astype(np.float64)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"{fn}: title must be a str or None, got {type(title).__name__}")
    if grid is None:
        if frame is not None:
            raise ValueError(f"{fn}: frame needs grid=(T, h, w) to place the keys on the frames")
        if w.ndim not in (2, 3) or 0 in w.shape:
            raise ValueError(f"{fn}: weights must be (L, S) or (heads, L, S) without grid "
                             f"(index out the batch dimension), got shape {w.shape}")
        return _plot_attention_matrix(w, path, title)
    return _plot_attention_grid(w, path, frame, grid, title, fn)


def _plot_attention_matrix(w, path, title):
    maps = w[None] if w.ndim == 2 else w                            # (heads, L, S)
    heads, L, S = maps.shape
    if heads > MAX_ATTENTION_PANELS:
        raise ValueError(f"plot_attention: {heads} heads is more than the {MAX_ATTENTION_PANELS} "
                         f"panels a figure holds; index out the heads you want")
    columns = min(heads, 4)
    rows = -(-heads // columns)
    # a panel's shape follows the matrix's (within bounds), so a 1 x 196 map is not a square
    aspect = min(max(L / S, 0.25), 4.0)
    panel = 3.2
    fig = _new_figure(columns * panel + 0.8, rows * panel * aspect + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    finite = maps[np.isfinite(maps)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    for k, ax in enumerate(axes):
        if k >= heads:
            ax.set_visible(False)
            continue
        image = ax.imshow(maps[k], cmap='viridis', vmin=0.0, vmax=vmax, aspect='auto',
                          interpolation='nearest')
        ax.set_xlabel('key')
        ax.set_ylabel('query')
        if heads > 1:
            ax.set_title(f'head {k}', fontsize=9)
    fig.colorbar(image, ax=axes[:heads].tolist(), label='attention weight', shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _check_grid(grid, fn):
    if (not isinstance(grid, (tuple, list)) or len(grid) != 3
            or not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g > 0
                       for g in grid)):
        raise ValueError(f"{fn}: grid must be (T, h, w), three positive ints, got {grid!r}")
    return tuple(int(g) for g in grid)


def _plot_attention_grid(w, path, frame, grid, title, fn):
    T, h, wd = _check_grid(grid, fn)
    patches = T * h * wd
    if w.ndim not in (1, 2, 3) or w.shape[-1] not in (patches, patches + 1):
        raise ValueError(f"{fn}: with grid={grid!r}, weights must be (S,), (L, S) or "
                         f"(heads, L, S) with S = T*h*w = {patches} (or {patches + 1} with a "
                         f"class token first), got shape {w.shape}")
    rows = w.reshape(-1, w.shape[-1])                               # (heads * L, S)
    if rows.shape[0] == 0:
        raise ValueError(f"{fn}: weights has no query (shape {w.shape})")
    if rows.shape[0] * T > MAX_ATTENTION_PANELS:
        raise ValueError(f"{fn}: {rows.shape[0]} quer(ies) x {T} frames = {rows.shape[0] * T} "
                         f"panels, more than the {MAX_ATTENTION_PANELS} a figure holds; index out "
                         f"the queries or heads you want (weights shape {w.shape})")
    cls_weight = rows[:, 0] if rows.shape[1] == patches + 1 else None
    maps = rows[:, -patches:].reshape(-1, T, h, wd)                 # (rows, T, h, w)
    labels = [f'query {q}' for q in range(rows.shape[0])]
    if w.ndim == 3:
        labels = [f'head {k} query {q}' for k in range(w.shape[0]) for q in range(w.shape[1])]
    images = None
    if frame is not None:
        images = _as_image(frame, 'frame', fn)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3) \
                or 0 in images.shape:
            raise ValueError(f"{fn}: frame must be (T, H, W, 3) or (T, H, W) frames, "
                             f"got shape {np.shape(frame)}")
        if images.shape[0] % T:
            raise ValueError(f"{fn}: frame has {images.shape[0]} frame(s), which is not a "
                             f"multiple of grid's T = {T}")
        images = images[::images.shape[0] // T]                     # first frame of each tubelet

    height, width = (images.shape[1], images.shape[2]) if images is not None else (h, wd)
    panel = min(2.0, (MAX_WIDTH - 1.4) / T)              # many frames: narrower panels
    aspect = min(max(height / width, 0.25), 4.0)
    fig = _new_figure(T * panel + 1.4, rows.shape[0] * panel * aspect + 0.6)
    axes = fig.subplots(rows.shape[0], T, squeeze=False)
    for r in range(rows.shape[0]):
        finite = maps[r][np.isfinite(maps[r])]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        for t in range(T):
            ax = axes[r, t]
            if images is not None:
                cmap = 'gray' if images.ndim == 3 else None
                ax.imshow(images[t], cmap=cmap, vmin=0.0, vmax=1.0)
                # the h x w map stretched over the frame's pixels (one block per patch), translucent
                image = ax.imshow(maps[r, t], cmap='inferno', vmin=0.0, vmax=vmax, alpha=0.55,
                                  extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                                  interpolation='nearest')
            else:
                image = ax.imshow(maps[r, t], cmap='inferno', vmin=0.0, vmax=vmax,
                                  interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f't = {t}', fontsize=9)
            if t == 0:
                label = labels[r]
                if cls_weight is not None:
                    label += f'\n(cls {cls_weight[r]:.3f})'
                ax.set_ylabel(label, fontsize=8)
        fig.colorbar(image, ax=axes[r].tolist(), shrink=0.9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ---- optical flow -------------------------------------------------------------------------------

def _flow_key(max_flow, size=101):
    """The colour code itself: flow_to_color of every displacement in the disc |d| <= max_flow,
    white outside it -- the legend of a flow panel."""
    from .data.flow import flow_to_color
    axis = np.linspace(-max_flow, max_flow, size)
    u, v = np.meshgrid(axis, axis)                                   # v grows downwards, as y
    key = flow_to_color(np.stack([u, v], axis=-1), max_flow=max_flow)
    key[u * u + v * v > max_flow * max_flow] = 255
    return key


def _check_flows(flows, fn):
    """flows (T-1, H, W, 2) or (H, W, 2) -> float32 (T-1, H, W, 2)."""
    f = _as_array(flows, 'flows', fn).astype(np.float32)
    if f.ndim == 3:
        f = f[None]
    if f.ndim != 4 or f.shape[-1] != 2 or 0 in f.shape:
        raise ValueError(f"{fn}: flows must be (T-1, H, W, 2) or (H, W, 2) with (dx, dy) last, "
                         f"got shape {np.shape(flows)}")
    return f


def flow_scale(flows):
    """The colour scale `plot_flow` uses unless it is given max_flow, in pixels: the 99th
    percentile of |d| over every pixel of every flow, so that a few wild vectors do not set it.
    With 3 flows or more, a flow whose own 99th percentile is more than twice every other flow's
    is left out: that is a scene cut (the flow then matches two unrelated pictures), and it would
    wash out the colours of all the others.  When that percentile is 0 (a small object moving on
    a still background) the largest magnitude is the scale, and 1.0 when nothing moves.

    flows: (T-1, H, W, 2) or (H, W, 2), (dx, dy) last, a Tensor or NumPy/CuPy array.
    Matplotlib is not needed.
    """
    f = _check_flows(flows, 'flow_scale')
    magnitude = np.hypot(f[..., 0], f[..., 1]).reshape(len(f), -1)      # (T-1, H * W)
    finite = [m[np.isfinite(m)] for m in magnitude]
    per_flow = np.array([np.percentile(m, FLOW_PERCENTILE) if m.size else 0.0 for m in finite])
    kept = list(range(len(f)))
    if len(f) >= 3:
        top, second = np.argsort(per_flow)[::-1][:2]
        if per_flow[second] > 0 and per_flow[top] > SCENE_CUT_RATIO * per_flow[second]:
            kept.remove(top)
    values = np.concatenate([finite[i] for i in kept])
    scale = float(np.percentile(values, FLOW_PERCENTILE)) if values.size else 0.0
    if scale <= 0 and values.size:
        scale = float(values.max())
    return scale if scale > 0 else 1.0


def _shrink(image, factor):
    """The mean of each factor x factor block of an (H, W, ...) image (partial blocks at the
    edges cropped): what a panel with fewer pixels than the image can show."""
    factor = min(factor, image.shape[0], image.shape[1])
    if factor <= 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[:h * factor, :w * factor].reshape(h, factor, w, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))


def _bare(ax):
    """No ticks, a thin grey frame: a still flow is white and must not vanish into the page."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor('0.75')


def plot_flow(flows, path, frames=None, max_flow=None, columns=None, frame_indices=None):
    """Optical flow, colour coded with `tensorlite.data.flow.flow_to_color` (hue = direction,
    saturation = magnitude, darker beyond the scale), in rows of panels, with the colour key.

    flows: (T-1, H, W, 2) -- the flows between consecutive frames, as `D.clip_flows` gives them --
    or one (H, W, 2).  frames: the T frames (T, H, W, 3) or (T, H, W), uint8 or float in [0, 1],
    drawn above, each flow panel centred between the two frames it joins (the last frame of a
    row begins the next one).  Each panel is titled with its frame indices ('frame 3',
    'flow 3 -> 4'): frame_indices gives the T frame numbers (default 0 .. T-1), e.g. where in a
    video the frames were read.  columns: flows per row (default: as many rows as 6 flows a row
    need, filled evenly).  max_flow: the magnitude of full saturation, in pixels, the same for
    every panel; default `flow_scale(flows)`, the 99th percentile of the magnitude (a scene cut
    left out).  The figure is at most MAX_WIDTH inches wide whatever the frame size and the
    number of columns (panels shrink, and images larger than their panel are averaged down to
    its pixels); at most 64 flows.  Returns `path`.
    """
    from .data.flow import flow_to_color
    fn = 'plot_flow'
    _check_path(path, fn)
    _matplotlib()
    f = _check_flows(flows, fn)
    n, H, W, _ = f.shape
    if n > MAX_FLOW_PANELS:
        raise ValueError(f"{fn}: {n} flows is more than the {MAX_FLOW_PANELS} panels a figure "
                         f"holds; index out the flows you want")
    if max_flow is None:
        max_flow, scale_source = flow_scale(f), f'{FLOW_PERCENTILE:.0f}th percentile of |flow|'
    elif isinstance(max_flow, bool) or not isinstance(max_flow, (int, float, np.number)) \
            or not math.isfinite(max_flow) or not max_flow > 0:
        raise ValueError(f"{fn}: max_flow must be a finite number > 0 (pixels), got {max_flow!r}")
    else:
        max_flow, scale_source = float(max_flow), 'given'
    if columns is None:
        columns = -(-n // -(-n // 6))                   # rows of at most 6, filled evenly
    elif isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"{fn}: columns must be a positive int (flows per row), got {columns!r}")
    columns = min(int(columns), n)
    if frame_indices is None:
        indices = list(range(n + 1))
    else:
        indices = [int(i) for i in _as_array(frame_indices, 'frame_indices', fn).ravel()]
        if len(indices) != n + 1:
            raise ValueError(f"{fn}: frame_indices must number the {n + 1} frames of {n} "
                             f"flow(s), got {len(indices)}")
    images = None
    if frames is not None:
        images = _as_image(frames, 'frames', fn)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(f"{fn}: frames must be (T, H, W, 3) or (T, H, W), "
                             f"got shape {np.shape(frames)}")
        if images.shape[0] != n + 1 or images.shape[1:3] != (H, W):
            raise ValueError(f"{fn}: {n} flow(s) of {H}x{W} need {n + 1} frames of {H}x{W}, "
                             f"got frames of shape {np.shape(frames)}")

    # panel widths across: a row's frames (one more than its flows) or its flows, and the key
    units = (columns + 1 if images is not None else columns) + 1
    panel = min(2.4, (MAX_WIDTH - 0.4) / units)
    aspect = min(max(H / W, 0.25), 4.0)
    factor = max(1, math.ceil(max(W / (panel * DPI), H / (panel * aspect * DPI))))
    rows = -(-n // columns)
    grid_rows = rows * (2 if images is not None else 1)
    fig = _new_figure(units * panel + 0.4, grid_rows * (panel * aspect + 0.35) + 0.5)
    # half-panel columns: frame j of a row spans 2j..2j+1, flow j spans 2j+1..2j+2 (between its
    # two frames); the key takes the last two, beside the first row
    half = 2 * units
    spec = fig.add_gridspec(grid_rows, half)
    title_size = 10 if panel >= 1.2 else 8
    for r in range(rows):
        first = r * columns
        count = min(columns, n - first)
        if images is not None:
            for j in range(count + 1):
                ax = fig.add_subplot(spec[2 * r, 2 * j:2 * j + 2])
                ax.imshow(_shrink(images[first + j], factor),
                          cmap='gray' if images.ndim == 3 else None, vmin=0.0, vmax=1.0)
                ax.set_title(f'frame {indices[first + j]}', fontsize=title_size)
                _bare(ax)
        for j in range(count):
            t = first + j
            start = 2 * j + 1 if images is not None else 2 * j
            ax = fig.add_subplot(spec[2 * r + 1 if images is not None else r, start:start + 2])
            ax.imshow(flow_to_color(_shrink(f[t], factor), max_flow=max_flow))
            ax.set_title(f'flow {indices[t]} \u2192 {indices[t + 1]}', fontsize=title_size)
            _bare(ax)
    ax = fig.add_subplot(spec[0:2 if images is not None else 1, half - 2:half])
    ax.imshow(_flow_key(max_flow), extent=(-max_flow, max_flow, max_flow, -max_flow))
    ax.set_title(f'key: full colour at\n|d| = {max_flow:.3g} px', fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_xlabel('dx (px)', fontsize=8)
    ax.set_ylabel('dy (px)', fontsize=8)
    fig.suptitle(f'optical flow: hue = direction, saturation = |d| up to {max_flow:.3g} px '
                 f'({scale_source}; darker beyond)', fontsize=11)
    return _save(fig, path)


# ---- comparing models: the temporal diagnostic --------------------------------------------------

def _lesson_claims(records):
    """[(claim, cells, passed)]: the claims of `tensorlite.compare.CLAIMS` whose (model, family)
    cells are all in `records` -- what `compare.lesson_checks` gives, with the cells each claim
    reads.  A claim that reads a missing value (None) is left out: it cannot be decided."""
    from . import compare
    cells = {(str(r['model']), str(r['family'])): r for r in records}
    claims = []
    for what, needs, test in compare.CLAIMS:
        if all(cell in cells for cell in needs):
            try:
                claims.append((what, needs, bool(test(cells))))
            except TypeError:                               # a None accuracy
                continue
    return claims


def _draw_claims(ax, claims):
    """The claims as a list in columns on `ax` (axis off): a green tick before each that holds, a
    red cross (and red text) before each that does not."""
    ax.set_axis_off()
    held = sum(passed for _, _, passed in claims)
    ax.set_title(f"the lesson's claims (tensorlite.compare.lesson_checks): {held} of "
                 f"{len(claims)} hold", fontsize=12, loc='left')
    columns = 1 if len(claims) <= 6 else 2 if len(claims) <= 16 else 3
    per_column = -(-len(claims) // columns)
    for k, (what, _, passed) in enumerate(claims):
        x, row = (k // per_column) / columns, k % per_column
        y = 1.0 - (row + 0.5) / (per_column + 0.5)
        ax.text(x, y, CLAIM_MARK[passed], transform=ax.transAxes, ha='left', va='center',
                fontsize=11, fontweight='bold', color=CLAIM_COLOUR[passed])
        ax.text(x + 0.018, y, what, transform=ax.transAxes, ha='left', va='center', fontsize=10,
                color='black' if passed else CLAIM_COLOUR[False])


def plot_compare(records, path):
    """Grouped bars of `temporal_diagnostic` results for several models on several families, and
    the lesson's claims they decide.

    One panel per family (scene, occluded, motion, order first, any other after, as they come;
    two columns of panels when there are more than two families), one group per model (in the
    order they come), bars for the accuracy (in %) on clips in order, reversed and shuffled,
    each labelled with its value, and a dashed line at chance across each group.  Below the
    panels, the claims of `tensorlite.compare.lesson_checks` that the records decide, each marked
    held (a green tick) or not (a red cross); the same mark stands above every bar group a claim
    reads (a cross if any claim on it fails).  The figure is at most MAX_WIDTH inches wide.

    records: a list of dicts with the keys model, family, accuracy, reversed_accuracy,
    shuffled_accuracy, chance -- one per (model, family); a value may be None (no bar).  A model
    that reads the order of frames keeps its accuracy on 'scene' and drops to chance on 'order'
    when the frames are reversed or shuffled.  Returns `path`.
    """
    fn = 'plot_compare'
    _check_path(path, fn)
    _matplotlib()
    if isinstance(records, dict) or not isinstance(records, (list, tuple)):
        raise TypeError(f"{fn}: records must be a list of dicts, got {type(records).__name__}")
    if not records:
        raise ValueError(f"{fn}: records is empty: there is nothing to compare")
    table, models, families = {}, [], []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"{fn}: records[{i}] must be a dict, got {type(record).__name__}")
        missing = [k for k in COMPARE_KEYS if k not in record]
        if missing:
            raise ValueError(f"{fn}: records[{i}] lacks the key(s) {missing}; it has "
                             f"{sorted(record)}, and every record needs {list(COMPARE_KEYS)}")
        model, family = str(record['model']), str(record['family'])
        if (model, family) in table:
            raise ValueError(f"{fn}: records[{i}] repeats model {model!r} on family {family!r}; "
                             f"give one record per (model, family)")
        try:
            values = {k: _number(record[k]) for k in COMPARE_KEYS[2:]}
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: records[{i}]: {', '.join(COMPARE_KEYS[2:])} must be numbers "
                            f"or None, got {[record[k] for k in COMPARE_KEYS[2:]]}") from None
        outside = {k: v for k, v in values.items() if not (math.isnan(v) or 0 <= v <= 1)}
        if outside:
            raise ValueError(f"{fn}: records[{i}] ({model!r} on {family!r}): accuracies and "
                             f"chance are fractions in [0, 1], got {outside}")
        table[model, family] = values
        models += [model] if model not in models else []
        families += [family] if family not in families else []
    families = [f for f in FAMILY_ORDER if f in families] + \
               [f for f in families if f not in FAMILY_ORDER]
    claims = _lesson_claims(records)
    marks = {}                                      # (model, family) -> do all its claims hold
    for _, cells, passed in claims:
        for cell in cells:
            marks[cell] = marks.get(cell, True) and passed

    columns = len(families) if len(families) <= 2 else 2         # four panels: a 2 x 2 grid
    rows = -(-len(families) // columns)
    # a model's group needs ~0.9 inch for its tick label and three labelled bars; the figure is
    # capped at MAX_WIDTH (then the groups narrow)
    width = min(MAX_WIDTH, max(4.5, 0.9 * len(models) + 1.5) * columns)
    claim_rows = -(-len(claims) // (1 if len(claims) <= 6 else 2 if len(claims) <= 16 else 3))
    claims_height = 0.8 + 0.22 * claim_rows if claims else 0.0
    fig = _new_figure(width, 4.4 * rows + claims_height + 0.5)
    spec = fig.add_gridspec(rows + bool(claims), columns,
                            height_ratios=[4.4] * rows + ([claims_height] if claims else []))
    axes = [fig.add_subplot(spec[k // columns, k % columns]) for k in range(len(families))]
    for ax in axes[1:]:
        ax.sharey(axes[0])
    bar = 0.8 / len(COMPARE_BARS)
    label_size = 8 if len(models) * columns <= 24 else 6
    colours = ('tab:blue', 'tab:orange', 'tab:green')
    for ax, family in zip(axes, families):
        for m, model in enumerate(models):
            values = table.get((model, family))
            if values is None:                                      # this model was not run here
                ax.text(m, 50, 'no record', ha='center', va='center', rotation=90,
                        color='gray', fontsize=9)
                continue
            for b, ((key, label), colour) in enumerate(zip(COMPARE_BARS, colours)):
                x = m + (b - (len(COMPARE_BARS) - 1) / 2) * bar
                value = 100 * values[key]
                if math.isnan(value):
                    continue
                ax.bar(x, value, bar, color=colour,
                       label=label if label not in ax.get_legend_handles_labels()[1] else None)
                # the value inside the top of a tall bar, above a short one
                inside = value >= 12
                ax.text(x, value - 2 if inside else value + 1, f'{value:.0f}', ha='center',
                        va='top' if inside else 'bottom', rotation=90, fontsize=label_size,
                        color='white' if inside else 'black')
            if not math.isnan(values['chance']):
                ax.hlines(100 * values['chance'], m - 0.45, m + 0.45, colors='black',
                          linestyles='dashed', linewidth=1,
                          label='chance' if 'chance' not in ax.get_legend_handles_labels()[1]
                          else None)
            if (model, family) in marks:
                held = marks[model, family]
                ax.text(m, 104, CLAIM_MARK[held], ha='center', va='bottom', fontsize=12,
                        fontweight='bold', color=CLAIM_COLOUR[held])
        tilt = len(models) > 3
        ax.set_xticks(range(len(models)), models, rotation=30 if tilt else 0,
                      ha='right' if tilt else 'center', rotation_mode='anchor', fontsize=10)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_title(family, fontsize=13)
        ax.grid(True, axis='y', alpha=0.3)
        ax.tick_params(axis='y', labelsize=10)
    for k, ax in enumerate(axes):
        if k % columns == 0:
            ax.set_ylabel('top-1 accuracy (%)', fontsize=11)
        else:
            ax.tick_params(axis='y', labelleft=False)
    axes[0].set_ylim(0.0, 113.0)
    axes[0].set_yticks(range(0, 101, 20))
    legend = {}                                         # one legend: the first of each label
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels = [label for _, label in COMPARE_BARS if label in legend] + \
        (['chance'] if 'chance' in legend else [])
    handles = [legend[label] for label in labels]
    if marks:
        from matplotlib.lines import Line2D
        for held in (True, False):
            handles.append(Line2D([], [], linestyle='none', marker=CLAIM_MARKER[held],
                                  markersize=9, color=CLAIM_COLOUR[held]))
            labels.append('claims on this model hold' if held else 'a claim on this model fails')
    fig.legend(handles, labels, loc='outside upper center', ncols=len(labels), fontsize=10)
    if claims:
        _draw_claims(fig.add_subplot(spec[rows, :]), claims)
    return _save(fig, path)


# ---- the experiments ----------------------------------------------------------------------------

EXPERIMENT_KEYS = {                              # what each experiment's plot reads of a record
    'sampling': ('train_sampler', 'stride', 'views', 'centre_accuracy', 'multi_clip_accuracy',
                 'chance'),
    'frames': ('model', 'frames', 'accuracy', 'train_ms_per_clip', 'activation_bytes', 'chance'),
    'data': ('model', 'train_clips', 'accuracy', 'chance'),
}


def _experiment_records(result, fn):
    """Check a `run_experiment` result: (name, records), each record's plotted values numbers."""
    if not isinstance(result, dict):
        raise TypeError(f"{fn}: result must be the dict run_experiment returns, "
                        f"got {type(result).__name__}")
    missing = [k for k in ('experiment', 'records') if k not in result]
    if missing:
        raise ValueError(f"{fn}: result lacks the key(s) {missing}; it has {sorted(result)}")
    name, records = result['experiment'], result['records']
    if name not in EXPERIMENT_KEYS:
        raise ValueError(f"{fn}: result['experiment'] must be one of {list(EXPERIMENT_KEYS)}, "
                         f"got {name!r}")
    if not isinstance(records, (list, tuple)) or not records:
        raise ValueError(f"{fn}: result['records'] must be a non-empty list of dicts, got "
                         f"{records!r}"[:200])
    keys = EXPERIMENT_KEYS[name]
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"{fn}: records[{i}] must be a dict, got {type(record).__name__}")
        lacking = [k for k in keys if k not in record]
        if lacking:
            raise ValueError(f"{fn}: records[{i}] lacks the key(s) {lacking}; a {name!r} record "
                             f"needs {list(keys)}")
        for k in keys:
            if k in ('model', 'train_sampler'):
                continue
            value = _number(record[k]) if isinstance(record[k], (int, float, np.number)) \
                and not isinstance(record[k], bool) else None
            if value is None or math.isnan(value):
                raise TypeError(f"{fn}: records[{i}][{k!r}] must be a finite number, "
                                f"got {record[k]!r}")
            if (k.endswith('accuracy') or k == 'chance') and not 0 <= value <= 1:
                raise ValueError(f"{fn}: records[{i}][{k!r}] is a fraction in [0, 1], "
                                 f"got {value}")
    return name, records


def _chance_line(ax, chance):
    ax.axhline(chance, color='black', linestyle='dashed', linewidth=1, label='chance')


def plot_experiment(result, path):
    """The figure of a `tensorlite.experiments.run_experiment` result:

    sampling  bars per training sampler: centre-clip and multi-clip accuracy, chance dashed;
    frames    three panels against the frames per clip, one line per model: accuracy, training
              milliseconds per clip, activation MiB per clip;
    data      accuracy against the number of training clips (log scale), one line per model.

    result: the dict run_experiment returns (its 'experiment' and 'records' are read; each record
    needs the keys in EXPERIMENT_KEYS for its experiment).  Returns `path`."""
    fn = 'plot_experiment'
    _check_path(path, fn)
    _matplotlib()
    name, records = _experiment_records(result, fn)
    chance = float(records[0]['chance'])
    if name == 'sampling':
        fig = _new_figure(min(MAX_WIDTH, max(4.0, 2.2 * len(records) + 1.5)), 4.2)
        ax = fig.subplots()
        width = 0.38
        for k, r in enumerate(records):
            for b, (key, label, colour) in enumerate((
                    ('centre_accuracy', 'centre clip', 'tab:blue'),
                    ('multi_clip_accuracy', f"{r['views']} clips averaged", 'tab:orange'))):
                x = k + (b - 0.5) * width
                value = float(r[key])
                ax.bar(x, value, width, color=colour,
                       label=label if label not in ax.get_legend_handles_labels()[1] else None)
                ax.text(x, value, f'{value:.2f}', ha='center', va='bottom', fontsize=7)
        ax.set_xticks(range(len(records)),
                      [f"{r['train_sampler']}\n(stride {r['stride']})" for r in records])
        _chance_line(ax, chance)
        ax.set_ylim(0.0, 1.08)
        ax.set_ylabel('top-1 accuracy')
        ax.set_title('sampling: training clips, and one clip against several at test')
        ax.grid(True, axis='y', alpha=0.3)
        ax.legend(loc='upper left', fontsize=8)
        return _save(fig, path)

    models = []
    for r in records:
        models += [r['model']] if r['model'] not in models else []
    if name == 'frames':
        fig = _new_figure(13, 4.0)
        axes = fig.subplots(1, 3)
        panels = (('accuracy', 'top-1 accuracy on order', 1.0),
                  ('train_ms_per_clip', 'training ms per clip', 1.0),
                  ('activation_bytes', 'activation MiB per clip', 1 / 2 ** 20))
        for ax, (key, label, scale) in zip(axes, panels):
            for model in models:
                rows = sorted((r for r in records if r['model'] == model),
                              key=lambda r: r['frames'])
                ax.plot([r['frames'] for r in rows], [float(r[key]) * scale for r in rows],
                        marker='o', label=model)
            frames = sorted({r['frames'] for r in records})
            ax.set_xscale('log', base=2)
            ax.set_xticks(frames, [str(f) for f in frames])
            ax.set_xlabel('frames per clip')
            ax.set_title(label)
            ax.grid(True, alpha=0.3)
        _chance_line(axes[0], chance)
        axes[0].set_ylim(0.0, 1.05)
        axes[0].legend(loc='lower right', fontsize=8)
        return _save(fig, path)

    fig = _new_figure(6.5, 4.2)
    ax = fig.subplots()
    for model in models:
        rows = sorted((r for r in records if r['model'] == model), key=lambda r: r['train_clips'])
        xs, ys = [r['train_clips'] for r in rows], [float(r['accuracy']) for r in rows]
        ax.plot(xs, ys, marker='o', label=model)
        for x, y in zip(xs, ys):
            ax.text(x, y, f' {y:.2f}', fontsize=7, va='bottom')
    sizes = sorted({r['train_clips'] for r in records})
    ax.set_xscale('log', base=2)
    ax.set_xticks(sizes, [f'{n:,d}' for n in sizes])
    _chance_line(ax, chance)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel('training clips')
    ax.set_ylabel('top-1 accuracy on order')
    ax.set_title('data: accuracy against the amount of training data')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    return _save(fig, path)
