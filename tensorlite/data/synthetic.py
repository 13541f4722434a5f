"""Synthetic action datasets: the embedded default on which the lesson's claims are measured.

Each family hides its label in exactly one place, so what a model can and cannot learn from it
says which part of the video that model uses:

    scene         the background (texture and colour) names the class (6 scenes); a square and a
                  disc of random colours move in front at random.  One frame suffices: the
                  single-frame baseline's home ground.
    occluded      the scene of `scene` (6 classes, the same backgrounds and distractors), behind a
                  grey occluder that hides all of each frame but one window (its sides 1/4 to 1/2
                  of the frame's), drawn anew in every frame, and in half the frames all of it.
                  One frame tells the scene only part of the time; several frames together do:
                  late fusion's home ground against the single-frame baseline.
    motion        one object moves right, left, down or up at 1 to 2 pixels per frame.  Its start
                  is uniform on the frame and motion wraps around the edges, and its look does not
                  depend on the class, so every single frame has the same distribution in every
                  class: only two or more frames tell.
    order         one object moves horizontally, then vertically ("horizontal then vertical"), or
                  the other way round.  Clip 2k + 1 is clip 2k played backwards, so the two classes
                  have the same multiset of frames (averaged per-frame features cannot separate
                  them), and as the directions are random, the same distribution of motions
                  (averaged flow cannot either): only the order of the two motions tells.
    localization  long videos (192 frames by default) with 0 to 3 action instances from the motion
                  and order families (6 classes), one after another, while a grey disc wanders
                  about behind them; the target is each instance's (start, end, label), in frames.
    captioning    two objects, two events, one sentence: "a red square moves left then a blue
                  circle appears".  Each object is a colour (4, never both the same) and a shape
                  (square, circle) and does one of 6 things (moves right/left/down/up, appears,
                  disappears) in its half of the clip; the objects never overlap.
    event         long videos (64 frames by default) whose evidence is brief: a saturated square
                  shows up for one short event (EVENT_FRAMES, 8 to 12 frames, starting at a
                  uniformly random time) and moves right, left, down or up (the 4 classes), while a
                  grey disc random-walks the whole video, as in localization.  A 16-frame clip
                  cropped at random, or the centre clip, often misses the event: the case for
                  multi-clip evaluation (tensorlite.experiments, 'sampling').

Clip i is a pure function of (seed, i): its random numbers are counter-based (SplitMix64 of the
seed, the family, the clip and the draw), not drawn from a shared generator, so any index, in any
process, in any order, alone or in a batch, gives the same clip (bit for bit with one NumPy build;
elsewhere the sines of the backgrounds may differ in the last bit), and a batch of clips is
rendered at once with array operations.

Geometry.  Pixel (y, x) covers [x, x + 1) x [y, y + 1); object centres are real numbers, so objects
move by sub-pixel amounts.  A square's alpha is the exact fraction of each pixel it covers; a disc's
is a linear ramp one pixel wide across its rim (antialiased).  The frame is a torus: an object that
leaves on one side comes back on the other, which keeps a uniformly random position uniform at every
frame.

Flow.  With return_flow=True each clip comes with its ground-truth optical flow, float32
(T - 1, size, size, 2) = (dx, dy) with prev(y, x) = next(y + dy, x + dx) (coordinates modulo size,
the torus).  At each pixel of frame t the flow is the displacement from t to t + 1 of the frontmost
object that covers at least half of that pixel, and 0 where no object does (the background never
moves).  Brightness constancy fails, as it does in real video, where the background is covered or
uncovered (its flow is 0 but next(y, x) shows the object), where objects occlude each other (scene),
a little on antialiased rims, and on an object whose action ends at t (localization: its flow is
its motion continued, although it is gone at t + 1).  Objects fading in or out stand still: 0.
"""
import numbers

import numpy as np

# New families go at the end: a family's random stream is its place in this tuple.
FAMILIES = ('scene', 'motion', 'order', 'localization', 'captioning', 'occluded', 'event')

# Each family's shortest clip: order's two motions take at least a third of the steps each (>= 1);
# localization fits three instances of up to 32 frames with 4-frame gaps (3 * 32 + 2 * 4);
# event fits its longest event.
MIN_FRAMES = {'scene': 1, 'motion': 2, 'order': 4, 'localization': 104, 'captioning': 4,
              'occluded': 1, 'event': 12}
DEFAULT_FRAMES = {'scene': 16, 'motion': 16, 'order': 16, 'localization': 192, 'captioning': 16,
                  'occluded': 16, 'event': 64}
MIN_SIZE = 16                     # the smallest object (scene distractor) is then >= 2 pixels wide

# name, texture, colour of the texture's low parts, colour of its high parts
SCENES = (
    ('pool', 'waves', (0.10, 0.40, 0.75), (0.55, 0.85, 0.95)),
    ('forest', 'vertical stripes', (0.10, 0.22, 0.05), (0.40, 0.55, 0.20)),
    ('kitchen', 'checker', (0.95, 0.93, 0.88), (0.70, 0.15, 0.12)),
    ('field', 'diagonal stripes', (0.30, 0.62, 0.15), (0.55, 0.82, 0.35)),
    ('beach', 'dots', (0.92, 0.82, 0.55), (0.60, 0.40, 0.20)),
    ('night', 'rings', (0.02, 0.03, 0.12), (0.20, 0.22, 0.45)),
)

# name, dx, dy (image coordinates: y grows downwards)
DIRECTIONS = (('right', 1, 0), ('left', -1, 0), ('down', 0, 1), ('up', 0, -1))
ORDERS = ('horizontal then vertical', 'vertical then horizontal')
ACTIONS = tuple(name for name, _, _ in DIRECTIONS) + ORDERS       # localization's classes

INSTANCE_FRAMES = (16, 32)        # an action instance's length, both ends included
INSTANCE_GAP = 4                  # fewest frames between two instances
MAX_INSTANCES = 3

# occluded: in each frame a grey occluder leaves one window of the scene visible, its sides a
# uniform fraction of the frame's in this range, and in a frame with this probability none.
OCCLUDED_WINDOW = (0.25, 0.5)
OCCLUDED_HIDDEN = 0.5

# event: the event's length in frames, both ends included (MIN_FRAMES['event'] is the longest).
EVENT_FRAMES = (8, 12)

COLOURS = (('red', (0.90, 0.12, 0.10)), ('green', (0.15, 0.75, 0.20)),
           ('blue', (0.15, 0.30, 0.95)), ('yellow', (0.95, 0.85, 0.10)))
SHAPES = ('square', 'circle')
EVENTS = ('moves right', 'moves left', 'moves down', 'moves up', 'appears', 'disappears')
SPECIALS = ('<pad>', '<bos>', '<eos>', '<unk>')
CAPTION_VOCAB = SPECIALS + ('a', 'then') + tuple(name for name, _ in COLOURS) + SHAPES + (
    'moves', 'right', 'left', 'down', 'up', 'appears', 'disappears')
PAD, BOS, EOS, UNK = range(4)
# "a <colour> <shape> <event> then a <colour> <shape> <event>", the two colours different
NUM_CAPTIONS = len(COLOURS) * (len(COLOURS) - 1) * len(SHAPES) ** 2 * len(EVENTS) ** 2

_STREAM = {family: k + 1 for k, family in enumerate(FAMILIES)}
_CHUNK_PIXELS = 1 << 19           # pixels per frame-plane rendered at once: a chunk stays in cache


# ---- counter-based random numbers ---------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x):
    """SplitMix64's finalizer on a uint64 array (Steele, Lea & Flood 2014): a bijection that turns
    consecutive counters into independent-looking 64-bit words.  uint64 arithmetic wraps."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Draws:
    """Uniform random numbers for a set of clips, keyed by the clips' own numbers: the j-th number
    drawn for key k is a function of (seed, stream, k, j) only, so a clip's numbers do not depend on
    which other clips share its batch.  Every family draws in a fixed order, whatever the labels.
    Numbers are hashed a block of columns at a time (one clip needs a few dozen)."""

    _BLOCK = 32

    def __init__(self, seed, stream, keys):
        base = _splitmix64(np.array([seed % 2 ** 64], np.uint64)
                           + np.array([stream], np.uint64) * _GOLDEN)
        self._keys = _splitmix64(base ^ _splitmix64(np.asarray(keys, np.uint64) + _GOLDEN))
        self.n = len(self._keys)
        self._drawn = 0
        self._table = np.empty((self.n, 0))                     # (n, columns hashed so far)

    def _columns(self, count):
        """(n, count) uniforms in [0, 1): the next `count` columns."""
        stop = self._drawn + count
        if stop > self._table.shape[1]:
            first = self._table.shape[1]
            columns = np.arange(first, max(stop, first + self._BLOCK), dtype=np.uint64)
            bits = _splitmix64(self._keys[:, None] + (columns + np.uint64(1)) * _GOLDEN)
            fresh = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # 53 bits -> [0, 1)
            self._table = np.concatenate([self._table, fresh], axis=1)
        block = self._table[:, self._drawn:stop]
        self._drawn = stop
        return block

    def uniform(self, low=0.0, high=1.0, count=None):
        """(n,) or (n, count) float64 uniform in [low, high)."""
        u = self._columns(count) if count else self._columns(1)[:, 0]
        return low + u * (high - low)

    def integers(self, low, high, count=None):
        """(n,) or (n, count) int64 uniform in [low, high), high excluded; low, high may be (n,)."""
        if count:
            low, high = np.asarray(low)[..., None], np.asarray(high)[..., None]
        return np.floor(self.uniform(count=count) * (high - low) + low).astype(np.int64)

    def sign(self):
        """(n,) float64, -1 or +1 with equal chance."""
        return np.where(self.uniform() < 0.5, -1.0, 1.0)


# ---- drawing ------------------------------------------------------------------------------------

class _Layer:
    """One object in each of a chunk of n clips over T frames.

    is_disc (n,) bool: a disc of radius `half` or an axis-aligned square of side 2 * `half` (n,);
    x, y (n, T) float64: its centre in each frame, unwrapped (x[:, t + 1] - x[:, t] is the motion);
    colour (n, 3); opacity (n, T) in [0, 1], or None for an object present in every frame.
    coverage (n, T, S, S) float32, or None: the layer's alpha given outright (the occluders,
    which are no single shape); it then replaces the shape, and x, y are only its motion (flow)."""

    def __init__(self, is_disc, half, x, y, colour, opacity=None, coverage=None):
        self.is_disc = np.broadcast_to(np.asarray(is_disc, bool), half.shape)
        self.half, self.x, self.y, self.opacity = half, x, y, opacity
        self.colour = np.asarray(colour, np.float32)
        self.coverage = coverage


def _wrapped_offsets(centre, size):
    """(n, T) centres -> (n, T, size): each pixel centre minus the object centre, taken the short
    way round the torus, in [-size / 2, size / 2)."""
    d = (np.arange(size) + 0.5) - centre[..., None]
    return d - size * np.floor(d / size + 0.5)


def _square_coverage(dx, dy, half, opacity, alpha):
    """Exact area coverage of a square, into alpha (n, T, H, W) float32: the interval
    [c - h, c + h] covers clip(h + 0.5 - |d|, 0, 1) of the pixel whose centre is d away (for
    h >= 0.5), and a square covers the product of its two intervals' coverages."""
    cover_x = np.clip(half[:, None, None] + 0.5 - np.abs(dx), 0.0, 1.0)
    cover_y = np.clip(half[:, None, None] + 0.5 - np.abs(dy), 0.0, 1.0)
    if opacity is not None:
        cover_x = cover_x * opacity[..., None]
    cover_x, cover_y = cover_x.astype(np.float32), cover_y.astype(np.float32)
    np.multiply(cover_y[..., :, None], cover_x[..., None, :], out=alpha)


def _disc_coverage(dx, dy, half, opacity, alpha):
    """A disc with a one-pixel linear ramp across its rim, into alpha (n, T, H, W) float32:
    clip(r + 0.5 - distance, 0, 1), the area coverage of a straight edge crossing the pixel."""
    dx, dy = dx.astype(np.float32), dy.astype(np.float32)
    np.add(dy[..., :, None] ** 2, dx[..., None, :] ** 2, out=alpha)
    np.sqrt(alpha, out=alpha)
    np.subtract((half + 0.5).astype(np.float32)[:, None, None, None], alpha, out=alpha)
    np.clip(alpha, 0.0, 1.0, out=alpha)
    if opacity is not None:
        alpha *= opacity.astype(np.float32)[..., None, None]


def _coverage(layer, alpha):
    """Into alpha (n, T, S, S) float32: how much of each pixel the layer's object covers, times
    its opacity."""
    if layer.coverage is not None:
        alpha[...] = layer.coverage
        return
    size = alpha.shape[-1]
    dx, dy = _wrapped_offsets(layer.x, size), _wrapped_offsets(layer.y, size)
    discs = layer.is_disc
    if not discs.any():
        _square_coverage(dx, dy, layer.half, layer.opacity, alpha)
    elif discs.all():
        _disc_coverage(dx, dy, layer.half, layer.opacity, alpha)
    else:                                    # squares everywhere, then the discs over their clips
        _square_coverage(dx, dy, layer.half, layer.opacity, alpha)
        part = np.empty((int(discs.sum()),) + alpha.shape[1:], np.float32)
        opacity = None if layer.opacity is None else layer.opacity[discs]
        _disc_coverage(dx[discs], dy[discs], layer.half[discs], opacity, part)
        alpha[discs] = part


def _render(out, background, layers, flow=None, workspace=None):
    """Paint a chunk of clips.

    out (n, 3, T, S, S) float32 receives background (n, 3, S, S) in every frame, then each layer
    over it, the later in front (the painter's algorithm: out += alpha (colour - out), a convex
    mix).  flow (n, T - 1, S, S, 2) float32, or None: where a layer covers at least half
    a pixel in frame t, that pixel's flow becomes the layer's displacement from t to t + 1 (a later
    layer overwrites: the frontmost object's motion); elsewhere 0.  workspace: two float32 arrays
    of at least n * T * S * S elements to reuse (allocating them anew each chunk costs page
    faults)."""
    planes = (out.shape[0],) + out.shape[2:]                          # (n, T, S, S)
    count = int(np.prod(planes))
    if workspace is None:
        workspace = (np.empty(count, np.float32), np.empty(count, np.float32))
    alpha, scratch = (w[:count].reshape(planes) for w in workspace)
    if flow is not None:                     # (dx, dy) planes, contiguous, written once at the end
        motion_planes = np.zeros((2, planes[0], planes[1] - 1) + planes[2:], np.float32)
    out[...] = background[:, :, None]
    for layer in layers:
        _coverage(layer, alpha)
        for c in range(3):
            channel = out[:, c]
            np.subtract(layer.colour[:, c, None, None, None], channel, out=scratch)
            scratch *= alpha
            channel += scratch
        if flow is not None:
            front = alpha[:, :-1] >= 0.5
            for k, position in enumerate((layer.x, layer.y)):
                motion = np.diff(position, axis=1).astype(np.float32)[:, :, None, None]
                np.copyto(motion_planes[k], motion, where=front)
    if flow is not None:
        flow[..., 0], flow[..., 1] = motion_planes
    np.clip(out, 0.0, 1.0, out=out)          # rounding of the mix can step an ulp outside


# ---- backgrounds and objects --------------------------------------------------------------------

def _pixel_grid(size):
    """(1, S, 1) rows and (1, 1, S) columns of pixel centres, as fractions of the frame."""
    centres = (np.arange(size) + 0.5) / size
    return centres[None, :, None], centres[None, None, :]


def _texture(kind, v, u, freq, phase, other, centre_v, centre_u):
    """(m, S, S) float64 texture in [0, 1] of one kind.  v (1, S, 1), u (1, 1, S): pixel rows and
    columns as fractions of the frame; the rest (m, 1, 1) per clip: angular frequency, two phases,
    and the centre of the rings."""
    if kind == 'waves':
        return 0.5 + 0.5 * np.sin(freq * v + 0.8 * np.sin(2 * np.pi * u + other) + phase)
    if kind == 'vertical stripes':
        return np.clip(0.5 + 2.0 * np.sin(freq * u + phase), 0.0, 1.0)
    if kind == 'checker':
        return np.clip(0.5 + 4.0 * np.sin(freq * u + phase) * np.sin(freq * v + other), 0.0, 1.0)
    if kind == 'diagonal stripes':
        return 0.5 + 0.5 * np.sin(freq * (u + v) / np.sqrt(2) + phase)
    if kind == 'dots':
        return np.clip(4.0 * (np.cos(freq * u + phase) * np.cos(freq * v + other) - 0.55), 0.0, 1.0)
    if kind == 'rings':
        radius = np.sqrt((u - centre_u) ** 2 + (v - centre_v) ** 2)
        return 0.5 + 0.5 * np.sin(freq * radius + phase)
    raise AssertionError(kind)


def _scene_background(d, labels, size):
    """(n, 3, S, S) float32: each clip's scene, textured and coloured by its class, with a random
    frequency (3 to 5 periods across the frame), random phases, and colours jittered by up to 0.05
    per channel.  Every clip draws the same numbers whatever its class."""
    v, u = _pixel_grid(size)
    freq = 2 * np.pi * d.uniform(3.0, 5.0)
    phase, other = d.uniform(0.0, 2 * np.pi), d.uniform(0.0, 2 * np.pi)
    centre_v, centre_u = d.uniform(), d.uniform()
    low_jitter, high_jitter = d.uniform(-0.05, 0.05, 3), d.uniform(-0.05, 0.05, 3)
    background = np.empty((d.n, 3, size, size), np.float32)
    for label, (_, kind, low, high) in enumerate(SCENES):
        pick = labels == label
        if not pick.any():
            continue
        per_clip = (a[pick][:, None, None] for a in (freq, phase, other, centre_v, centre_u))
        texture = _texture(kind, v, u, *per_clip)[:, None]                  # (m, 1, S, S)
        low_c = np.clip(np.array(low) + low_jitter[pick], 0, 1)[:, :, None, None]
        high_c = np.clip(np.array(high) + high_jitter[pick], 0, 1)[:, :, None, None]
        background[pick] = low_c + texture * (high_c - low_c)
    return background


def _neutral_background(d, size):
    """(n, 3, S, S) float32: a grey between 0.3 and 0.5, two faint waves (amplitude 0.04) and a tint
    of at most 0.03 per channel, the same for every class: low-saturation clutter against which the
    saturated action objects stand out."""
    v, u = _pixel_grid(size)
    grey = d.uniform(0.30, 0.50)[:, None, None]
    texture = grey
    for _ in range(2):
        fu, fv = d.integers(-3, 4), d.integers(1, 4)
        phase = d.uniform(0.0, 2 * np.pi)
        wave = fu[:, None, None] * u + fv[:, None, None] * v
        texture = texture + 0.04 * np.sin(2 * np.pi * wave + phase[:, None, None])
    tint = d.uniform(-0.03, 0.03, 3)
    return (texture[:, None] + tint[:, :, None, None]).astype(np.float32)


def _saturated_colours(d):
    """(n, 3) random colours of any hue, saturation >= 0.75 and value >= 0.8, so that
    max(rgb) - min(rgb) >= 0.6: never mistaken for the grey background or distractor."""
    hue, saturation, value = d.uniform(), d.uniform(0.75, 1.0), d.uniform(0.8, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + 6 * hue[:, None]) % 6              # HSV -> RGB, per channel
    return value[:, None] * (1 - saturation[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1))


def _actor(d, size):
    """Start (x0, y0), speed and half-size of an action object, all (n,), at a size-32 scale of
    1 to 2 pixels per frame and a square 6 to 8 pixels wide."""
    x0, y0 = d.uniform(0.0, size), d.uniform(0.0, size)
    speed = d.uniform(1.0, 2.0) * size / 32
    half = d.uniform(0.09, 0.13) * size
    return x0, y0, speed, half


def _two_motions(x0, y0, speed, tau, turn, hsign, vsign):
    """Positions of "horizontal then vertical": tau (n, T) steps since the start, the first `turn`
    of them horizontal (direction hsign), the rest vertical (vsign).  Played backwards (tau counted
    from the end), the same positions are "vertical then horizontal"."""
    across = np.minimum(tau, turn)
    down = np.maximum(tau - turn, 0)
    return x0 + hsign * speed * across, y0 + vsign * speed * down


def _col(a):
    """(n,) -> (n, 1), to broadcast a per-clip value over frames."""
    return np.asarray(a)[:, None]


# ---- families: each turns the clip indices of a chunk into (background, layers, targets) --------

def _distractors(d, num_frames, size):
    """The scene families' two distractors: a square and a disc of any colour, each moving in a
    straight line at up to 1.5 pixels per frame (size 32)."""
    t = np.arange(num_frames)
    layers = []
    for is_disc in (False, True):
        half = d.uniform(0.06, 0.10) * size
        x0, y0 = d.uniform(0.0, size), d.uniform(0.0, size)
        vx, vy = d.uniform(-1.5, 1.5) * size / 32, d.uniform(-1.5, 1.5) * size / 32
        colour = d.uniform(0.05, 0.95, 3)
        x, y = _col(x0) + _col(vx) * t, _col(y0) + _col(vy) * t
        layers.append(_Layer(is_disc, half, x, y, colour))
    return layers


def _scene_chunk(idx, num_frames, size, seed):
    labels = idx % len(SCENES)
    d = _Draws(seed, _STREAM['scene'], idx)
    background = _scene_background(d, labels, size)
    return background, _distractors(d, num_frames, size), labels


def _occluder(d, num_frames, size):
    """The occluded family's occluder, as a layer: a flat grey (0.3 to 0.6) over the whole frame
    but for one window, drawn anew in every frame -- its place uniform on the torus, its sides
    OCCLUDED_WINDOW of the frame's -- and in a frame with probability OCCLUDED_HIDDEN no window at
    all.  The window's edges are antialiased (exact area coverage, as a square's)."""
    seen = d.uniform(count=num_frames) >= OCCLUDED_HIDDEN                  # (n, T)
    low, high = OCCLUDED_WINDOW
    half_w = d.uniform(low / 2, high / 2, num_frames) * size
    half_h = d.uniform(low / 2, high / 2, num_frames) * size
    cx, cy = d.uniform(0.0, size, num_frames), d.uniform(0.0, size, num_frames)
    cover_x = np.clip(half_w[..., None] + 0.5 - np.abs(_wrapped_offsets(cx, size)), 0.0, 1.0)
    cover_y = np.clip(half_h[..., None] + 0.5 - np.abs(_wrapped_offsets(cy, size)), 0.0, 1.0)
    window = (cover_y[..., :, None] * cover_x[..., None, :]) * seen[..., None, None]
    coverage = (1.0 - window).astype(np.float32)                         # (n, T, S, S)
    grey = np.repeat(d.uniform(0.3, 0.6)[:, None], 3, axis=1)
    still = np.zeros((d.n, num_frames))                  # flow: the occluder has no motion
    return _Layer(False, np.zeros(d.n), still, still, grey, coverage=coverage)


def _occluded_chunk(idx, num_frames, size, seed):
    labels = idx % len(SCENES)
    d = _Draws(seed, _STREAM['occluded'], idx)
    background = _scene_background(d, labels, size)
    layers = [_occluder(d, num_frames, size)] + _distractors(d, num_frames, size)
    return background, layers, labels


def _motion_chunk(idx, num_frames, size, seed):
    labels = idx % len(DIRECTIONS)
    d = _Draws(seed, _STREAM['motion'], idx)
    background = _neutral_background(d, size)
    x0, y0, speed, half = _actor(d, size)
    colour = _saturated_colours(d)
    dx = np.array([dx for _, dx, _ in DIRECTIONS], np.float64)[labels]
    dy = np.array([dy for _, _, dy in DIRECTIONS], np.float64)[labels]
    t = np.arange(num_frames)
    x, y = _col(x0) + _col(speed * dx) * t, _col(y0) + _col(speed * dy) * t
    return background, [_Layer(False, half, x, y, colour)], labels


def _order_chunk(idx, num_frames, size, seed):
    labels = idx % 2
    d = _Draws(seed, _STREAM['order'], idx // 2)     # clips 2k and 2k + 1 share every draw
    background = _neutral_background(d, size)
    x0, y0, speed, half = _actor(d, size)
    colour = _saturated_colours(d)
    hsign, vsign = d.sign(), d.sign()
    shortest = (num_frames - 1) // 3               # each event spans at least a third of the steps
    turn = d.integers(shortest, num_frames - shortest)
    t = np.arange(num_frames)
    tau = np.where(_col(labels) == 1, num_frames - 1 - t, t)      # class 1: class 0 backwards
    x, y = _two_motions(_col(x0), _col(y0), _col(speed), tau, _col(turn), _col(hsign), _col(vsign))
    return background, [_Layer(False, half, x, y, colour)], labels


def _wandering_disc(d, num_frames, size):
    """A grey disc (0.75 to 0.95) that random-walks for the whole video, up to 0.8 pixels per
    frame on each axis (size 32): motion that is no action (localization, event)."""
    level = d.uniform(0.75, 0.95)
    radius = d.uniform(0.08, 0.11) * size
    x0, y0 = d.uniform(0.0, size), d.uniform(0.0, size)
    steps = d.uniform(-0.8, 0.8, 2 * num_frames).reshape(d.n, 2, num_frames) * size / 32
    walk = np.cumsum(steps, axis=2) - steps[:, :, :1]            # walk[:, :, 0] = 0
    return _Layer(True, radius, _col(x0) + walk[:, 0], _col(y0) + walk[:, 1],
                  np.repeat(level[:, None], 3, axis=1))


def _localization_chunk(idx, num_frames, size, seed):
    d = _Draws(seed, _STREAM['localization'], idx)
    background = _neutral_background(d, size)
    t = np.arange(num_frames)
    layers = [_wandering_disc(d, num_frames, size)]  # behind the actions: motion, no action

    # Instances: lengths, then the free frames cut at random into gaps before, between, after.
    count = d.integers(0, MAX_INSTANCES + 1)
    used = np.arange(MAX_INSTANCES) < _col(count)                   # (n, 3)
    fewest, most = INSTANCE_FRAMES
    length = np.where(used, d.integers(fewest, most + 1, MAX_INSTANCES), 0)
    label = d.integers(0, len(ACTIONS), MAX_INSTANCES)
    free = num_frames - length.sum(axis=1) - INSTANCE_GAP * np.maximum(count - 1, 0)
    cuts = np.where(used, d.uniform(count=MAX_INSTANCES), 1.0)
    cuts = np.sort(np.minimum(np.floor(cuts * _col(free + 1)), _col(free)), axis=1).astype(np.int64)
    start = cuts + np.cumsum(length, axis=1) - length + INSTANCE_GAP * np.arange(MAX_INSTANCES)
    end = start + length

    for k in range(MAX_INSTANCES):
        ax0, ay0, speed, half = _actor(d, size)
        colour = _saturated_colours(d)
        hsign, vsign = d.sign(), d.sign()
        shortest = (length[:, k] - 1) // 3
        turn = d.integers(shortest, np.maximum(length[:, k] - shortest, shortest + 1))
        tau = t - start[:, k, None]                                 # (n, T) frames into the action
        lab = label[:, k]
        ordered = np.where(_col(lab) == ACTIONS.index(ORDERS[1]), _col(length[:, k]) - 1 - tau, tau)
        ox, oy = _two_motions(_col(ax0), _col(ay0), _col(speed), ordered, _col(turn),
                              _col(hsign), _col(vsign))
        dirs = np.clip(lab, 0, len(DIRECTIONS) - 1)
        dx = np.array([dx for _, dx, _ in DIRECTIONS], np.float64)[dirs]
        dy = np.array([dy for _, _, dy in DIRECTIONS], np.float64)[dirs]
        is_order = _col(lab >= len(DIRECTIONS))
        x = np.where(is_order, ox, _col(ax0) + _col(speed * dx) * tau)
        y = np.where(is_order, oy, _col(ay0) + _col(speed * dy) * tau)
        present = (tau >= 0) & (tau < _col(length[:, k]))
        layers.append(_Layer(False, half, x, y, colour, present.astype(np.float64)))

    annotations = [np.stack([start[i, :c], end[i, :c], label[i, :c]], axis=1).astype(np.int64)
                   for i, c in enumerate(count)]
    return background, layers, annotations


def _captioning_chunk(idx, num_frames, size, seed):
    d = _Draws(seed, _STREAM['captioning'], idx)
    background = _neutral_background(d, size)
    first_colour = d.integers(0, len(COLOURS))
    second_colour = (first_colour + d.integers(1, len(COLOURS))) % len(COLOURS)   # never the same
    shapes, events = d.integers(0, len(SHAPES), 2), d.integers(0, len(EVENTS), 2)
    x0, y0 = d.uniform(0.0, size), d.uniform(0.0, size)
    # The second object starts half a frame away, give or take an eighth, from where the first
    # one ends; each moves along one axis while the other stands still, so their distance across
    # the other axis stays >= 3/8 of the frame: they never overlap and the sentence stays visible.
    offset = d.uniform(size / 2 - size / 8, size / 2 + size / 8, 2)
    t = np.arange(num_frames)
    middle = num_frames // 2
    layers = []
    for k, (colour_id, begin, stop) in enumerate(((first_colour, 0, middle),
                                                  (second_colour, middle, num_frames))):
        event, is_disc = events[:, k], shapes[:, k] == SHAPES.index('circle')
        speed = d.uniform(1.0, 2.0) * size / 32
        half = d.uniform(0.09, 0.13) * size * np.where(is_disc, 1.1, 1.0)   # discs look smaller
        colour = np.array([rgb for _, rgb in COLOURS])[colour_id]
        # a mover stands still before its segment, moves through it, stands still after it
        steps = np.clip(t - begin, 0, stop - 1 - begin)
        dirs = np.clip(event, 0, len(DIRECTIONS) - 1)
        moving = event < len(DIRECTIONS)
        dx = np.where(moving, np.array([dx for _, dx, _ in DIRECTIONS], np.float64)[dirs], 0.0)
        dy = np.where(moving, np.array([dy for _, _, dy in DIRECTIONS], np.float64)[dirs], 0.0)
        x, y = _col(x0) + _col(speed * dx) * steps, _col(y0) + _col(speed * dy) * steps
        # appearing / disappearing: a fade over the first half of its segment
        ramp = max(1, (stop - begin) // 2)
        fade_in = np.clip((t - begin + 1) / ramp, 0.0, 1.0)
        opacity = np.where(_col(event == EVENTS.index('appears')), fade_in,
                           np.where(_col(event == EVENTS.index('disappears')), 1.0 - fade_in, 1.0))
        layers.append(_Layer(is_disc, half, x, y, colour, opacity))
        x0, y0 = x[:, -1] + offset[:, 0], y[:, -1] + offset[:, 1]
    captions = [f"a {COLOURS[c1][0]} {SHAPES[s1]} {EVENTS[e1]} then "
                f"a {COLOURS[c2][0]} {SHAPES[s2]} {EVENTS[e2]}"
                for c1, c2, (s1, s2), (e1, e2) in zip(first_colour, second_colour, shapes, events)]
    return background, layers, captions


def _event_chunk(idx, num_frames, size, seed):
    labels = idx % len(DIRECTIONS)
    d = _Draws(seed, _STREAM['event'], idx)
    background = _neutral_background(d, size)
    layers = [_wandering_disc(d, num_frames, size)]
    x0, y0, speed, half = _actor(d, size)
    colour = _saturated_colours(d)
    fewest, most = EVENT_FRAMES
    length = d.integers(fewest, most + 1)
    start = d.integers(0, num_frames - length + 1)               # uniform over where it fits
    tau = np.arange(num_frames) - _col(start)                    # (n, T) frames into the event
    dx = np.array([dx for _, dx, _ in DIRECTIONS], np.float64)[labels]
    dy = np.array([dy for _, _, dy in DIRECTIONS], np.float64)[labels]
    x, y = _col(x0) + _col(speed * dx) * tau, _col(y0) + _col(speed * dy) * tau
    present = (tau >= 0) & (tau < _col(length))
    layers.append(_Layer(False, half, x, y, colour, present.astype(np.float64)))
    return background, layers, labels


_CHUNK = {'scene': _scene_chunk, 'motion': _motion_chunk, 'order': _order_chunk,
          'localization': _localization_chunk, 'captioning': _captioning_chunk,
          'occluded': _occluded_chunk, 'event': _event_chunk}


# ---- the dataset --------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def to_frames(clip):
    """float32 (3, T, H, W) in [0, 1] -> uint8 (T, H, W, 3) frames, round(255 * value): the layout
    a decoded video has."""
    return np.rint(np.moveaxis(clip, 0, -1) * 255).astype(np.uint8)


class SyntheticActions:
    """A synthetic video dataset of one family (see the module doc), generated on the fly.

    SyntheticActions(family, num_clips, num_frames=None, size=32, seed=0, transform=None,
                     return_flow=False)

    num_frames: frames per clip; None is 16, or 192 for 'localization', 64 for 'event'.  Frames
    are size x size.

    dataset[i] -> (clip, target), or (clip, target, flow) with return_flow=True:
      clip    float32 (3, T, size, size) in [0, 1], the layout models take; with a transform, the
              clip's uint8 (T, size, size, 3) frames are passed to transform(frames) and its result
              is returned instead;
      target  scene, motion, order, occluded, event: the label, an int (label = i % num_classes:
              balanced);
              localization: int64 (K, 3) rows (start_frame, end_frame, label), end exclusive,
              K in 0..3, sorted by start, never overlapping (at least 4 frames apart);
              captioning: the sentence, a str;
      flow    float32 (T - 1, size, size, 2), (dx, dy) with prev(y, x) = next(y + dy, x + dx),
              in the rendered frames' coordinates (a transform is not applied to it).
    dataset.batch(indices) renders many clips at once (the fast path), see there.

    Attributes: family, num_clips, num_frames, size, seed, classes (names), num_classes, chance
    (the accuracy of a uniform guess: 1 / num_classes; for localization per instance label; for
    captioning the chance of guessing the whole sentence, and num_classes is None), vocab,
    max_caption_len (tokens of the longest caption with <bos> and <eos>).
    """

    def __init__(self, family, num_clips, num_frames=None, size=32, seed=0, transform=None,
                 return_flow=False):
        if family not in FAMILIES:
            raise ValueError(f"SyntheticActions: unknown family {family!r}; "
                             f"expected one of {', '.join(FAMILIES)}")
        if not _is_int(num_clips) or num_clips < 0:
            raise ValueError(f"SyntheticActions: num_clips must be an int >= 0, got {num_clips!r}")
        num_frames = DEFAULT_FRAMES[family] if num_frames is None else num_frames
        if not _is_int(num_frames) or num_frames < MIN_FRAMES[family]:
            raise ValueError(f"SyntheticActions: family {family!r} needs num_frames >= "
                             f"{MIN_FRAMES[family]}, got {num_frames!r}")
        if not _is_int(size) or size < MIN_SIZE:
            raise ValueError(f"SyntheticActions: size must be an int >= {MIN_SIZE}, got {size!r}")
        if not _is_int(seed):
            raise ValueError(f"SyntheticActions: seed must be an int, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"SyntheticActions: transform must be callable or None, "
                            f"got {type(transform).__name__}")
        self.family, self.num_clips, self.num_frames = family, int(num_clips), int(num_frames)
        self.size, self.seed = int(size), int(seed)
        self.transform, self.return_flow = transform, bool(return_flow)
        self.classes = {'scene': tuple(name for name, _, _, _ in SCENES),
                        'motion': tuple(name for name, _, _ in DIRECTIONS),
                        'order': ORDERS, 'localization': ACTIONS, 'captioning': (),
                        'occluded': tuple(name for name, _, _, _ in SCENES),
                        'event': tuple(name for name, _, _ in DIRECTIONS)}[family]
        self.num_classes = len(self.classes) or None
        self.chance = 1.0 / (self.num_classes or NUM_CAPTIONS)
        self.vocab = list(CAPTION_VOCAB)
        self._word_id = {word: k for k, word in enumerate(self.vocab)}
        self.max_caption_len = 13        # a <c> <s> moves <d> then a <c> <s> moves <d>, +2
        self._chunk_clips = max(1, _CHUNK_PIXELS // (self.num_frames * self.size * self.size))

    def __len__(self):
        return self.num_clips

    def __repr__(self):
        return (f"SyntheticActions({self.family!r}, num_clips={self.num_clips}, "
                f"num_frames={self.num_frames}, size={self.size}, seed={self.seed})")

    def _indices(self, indices):
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise TypeError(f"SyntheticActions: expected a 1-D sequence of int indices, got "
                            f"{type(indices).__name__} of shape {idx.shape} and dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        bad = (idx < -self.num_clips) | (idx >= self.num_clips)
        if bad.any():
            raise IndexError(f"SyntheticActions: index {int(idx[bad][0])} out of range for "
                             f"{self.num_clips} clips")
        return np.where(idx < 0, idx + self.num_clips, idx)

    def render(self, indices):
        """The raw renders of clips `indices` (ints in [-len, len)), no transform:
        (clips float32 (N, 3, T, S, S), targets, flows float32 (N, T - 1, S, S, 2) or None).
        targets: int64 (N,) labels, or a list of (K, 3) annotation arrays, or a list of captions."""
        idx = self._indices(indices)
        T, S = self.num_frames, self.size
        clips = np.empty((len(idx), 3, T, S, S), np.float32)
        flows = np.empty((len(idx), T - 1, S, S, 2), np.float32) if self.return_flow else None
        targets = []
        room = min(len(idx), self._chunk_clips) * T * S * S
        workspace = (np.empty(room, np.float32), np.empty(room, np.float32))
        for a in range(0, len(idx), self._chunk_clips):
            part = slice(a, a + self._chunk_clips)
            background, layers, chunk_targets = _CHUNK[self.family](idx[part], T, S, self.seed)
            _render(clips[part], background, layers, None if flows is None else flows[part],
                    workspace)
            targets.extend(chunk_targets)
        if self.num_classes and self.family != 'localization':
            targets = np.asarray(targets, np.int64).reshape(len(idx))
        return clips, targets, flows

    def batch(self, indices):
        """Many clips at once: (clips, targets) or (clips, targets, flows) with return_flow.

        clips: float32 (N, 3, T, S, S), the (N, C, T, H, W) batch models take; with a transform,
        the transform's results for each clip's uint8 frames, stacked with np.stack when they are
        arrays of one shape, else a list.  targets: int64 (N,) labels; for localization a list of
        (K, 3) annotation arrays; for captioning a list of sentences.  flows: float32
        (N, T - 1, S, S, 2)."""
        clips, targets, flows = self.render(indices)
        if self.transform is not None:
            results = [self.transform(to_frames(clip)) for clip in clips]
            same = (all(isinstance(r, np.ndarray) for r in results)
                    and len({r.shape for r in results}) <= 1)
            clips = np.stack(results) if same and results else results
        return (clips, targets) if flows is None else (clips, targets, flows)

    def __getitem__(self, i):
        if not _is_int(i):
            raise TypeError(f"SyntheticActions: index must be an int, got {type(i).__name__}")
        clips, targets, flows = self.render([i])
        clip = clips[0] if self.transform is None else self.transform(to_frames(clips[0]))
        target = int(targets[0]) if isinstance(targets, np.ndarray) else targets[0]
        return (clip, target) if flows is None else (clip, target, flows[0])

    def __getitems__(self, indices):
        """[dataset[i] for i in indices], rendered as one batch (PyTorch's batched-fetch hook)."""
        clips, targets, flows = self.render(indices)
        items = []
        for k in range(len(clips)):
            clip = clips[k] if self.transform is None else self.transform(to_frames(clips[k]))
            target = int(targets[k]) if isinstance(targets, np.ndarray) else targets[k]
            items.append((clip, target) if flows is None else (clip, target, flows[k]))
        return items

    def frames(self, i):
        """Clip i as uint8 (T, S, S, 3) frames, round(255 * clip): what a transform receives, and
        what write_video or optical_flow take."""
        return to_frames(self.render([i])[0][0])

    # ---- captions ----

    def encode(self, sentence, max_len=None):
        """A sentence -> int64 token ids: <bos>, one id per word (lower-cased, split on spaces;
        a word not in vocab is <unk>), <eos>, then <pad> up to max_len if given."""
        ids = [BOS] + [self._word_id.get(word, UNK) for word in sentence.lower().split()] + [EOS]
        if max_len is not None:
            if len(ids) > max_len:
                raise ValueError(f"encode: the sentence needs {len(ids)} tokens with <bos> and "
                                 f"<eos>, more than max_len={max_len}: {sentence!r}")
            ids += [PAD] * (max_len - len(ids))
        return np.array(ids, np.int64)

    def decode(self, ids):
        """Token ids -> the sentence: words up to the first <eos>, <bos> and <pad> dropped."""
        words = []
        for token in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= token < len(self.vocab):
                raise ValueError(f"decode: token id {token} is outside the vocabulary "
                                 f"(0..{len(self.vocab) - 1})")
            if token == EOS:
                break
            if token not in (BOS, PAD):
                words.append(self.vocab[token])
        return ' '.join(words)
