"""`tensorlite compare --experiment NAME`: three of the lesson's trade-offs, measured.

`tensorlite compare` asks which architectures read time; these ask what a choice around one
architecture costs or buys.  Every model is trained by the one loop, `tensorlite.train.fit`, with
`tensorlite.compare`'s recipe for it, on synthetic clips:

    sampling  long videos (the 'event' family: 64 frames, the evidence a short event at a random
              time among distracting motion).  C3D is trained on 16 consecutive frames cropped at
              random (RandomTemporalCrop, stride 1), and again on 16 frames spread over the whole
              video (UniformStride, stride 64 // 16 = 4).  Each is tested on its centre clip and
              on 5 clips spread over the video with their softmax scores averaged (MultiClip).
              Claim: averaging 5 clips beats the centre clip by >= 10 points (random crops).
    frames    C3D and TimeSformer trained on 4, 8 and 16 frames of the 'order' family (16-frame
              videos; T frames taken at stride 16 // T, so every clip spans the whole video):
              accuracy, training milliseconds per clip (measured) and activation memory per
              clip (`summary`).  Claims: the cost per clip grows with the frames, in time and in
              memory, for both; the findings say what the accuracy did.
    data      C3D against TimeSformer on 'order' with 256, 512, 1,024 and 2,048 training clips:
              an accuracy curve per model.  Each size trains for as many optimizer steps as
              the full recipe takes on 2,048 clips (epochs raised through the recipe's
              min_steps), so the curve varies the data, not the compute.  Claims: both reach
              90 % at 2,048 clips (compare's claim, the curve's anchor); the findings say which
              model wins at each size and whose curve is steeper.

    from tensorlite.experiments import run_experiment, format_experiment
    result = run_experiment('frames', quick=True)
    print(format_experiment(result))

run_experiment returns a JSON-able dict: experiment (the name), records (one per trained cell,
below), claims ([claim, passed] pairs), findings (sentences, computed from the records: what the
numbers show, whichever way they fall), seconds (the run's wall time), quick (bool).

Every record has: experiment, model, family, chance, params, train_seconds (fit's wall time),
train_ms_per_clip (train_seconds per clip and pass, measured after a warm-up step so that loading
the compiled kernels is not counted), epochs, train_clips, steps (optimizer steps), test_clips,
recipe.  Besides:

    sampling  train_sampler ('random_crop' or 'uniform_stride'), video_frames, clip_frames,
              stride, views (the K of multi-clip), centre_accuracy, multi_clip_accuracy,
              event_in_centre (the fraction of test videos whose centre clip shows any frame
              of the event, read from the pixels: the event's square is the only saturated thing)
    frames    frames, video_frames, stride, accuracy, reversed_accuracy, shuffled_accuracy,
              activation_bytes (`summary(model, (1, 3, T, 32, 32)).total_activation_bytes`), macs
    data      accuracy, reversed_accuracy, shuffled_accuracy

quick=True runs a tiny version of each (a few dozen clips, one pass: seconds) that exercises
every path but does not promise the claims.  jobs > 1 trains that many cells at once, each in a
spawned worker process with one BLAS and one Numba thread (as `run_compare` does); a cell's
arithmetic is the same as with jobs=1, its times are measured inside its worker.
"""
import time

import numpy as np

from . import compare
from .autograd.tensor import Tensor
from .data.samplers import MultiClip, RandomTemporalCrop, UniformStride
from .data.synthetic import SyntheticActions

EXPERIMENTS = ('sampling', 'frames', 'data')
RESULT_KEYS = ('experiment', 'records', 'claims', 'findings', 'seconds', 'quick')
COMMON_KEYS = ('experiment', 'model', 'family', 'chance', 'params', 'train_seconds',
               'train_ms_per_clip', 'epochs', 'train_clips', 'steps', 'test_clips', 'recipe')
RECORD_KEYS = {
    'sampling': COMMON_KEYS + ('train_sampler', 'video_frames', 'clip_frames', 'stride', 'views',
                               'centre_accuracy', 'multi_clip_accuracy', 'event_in_centre'),
    'frames': COMMON_KEYS + ('frames', 'video_frames', 'stride', 'accuracy', 'reversed_accuracy',
                             'shuffled_accuracy', 'activation_bytes', 'macs'),
    'data': COMMON_KEYS + ('accuracy', 'reversed_accuracy', 'shuffled_accuracy'),
}

SIZE = compare.SIZE
TIE = 0.05              # accuracies within 5 points are a tie: about two standard errors of an
                        # accuracy near 80 % on 256 test clips

# sampling: 64-frame videos, 16-frame clips, 5 views.  Half the random crops show none of the
# event and most show part of it: C3D was still at chance after 384 steps of such crops (1,024
# videos x 6 passes) and left it between 384 and 640 (2,048 x 5: 51 % with 5 clips), where the
# clean 16-frame event takes ~150 steps.  So 1,536 videos x 8 passes (768 steps, a fresh crop
# each pass), for both runs: ~2 minutes each on one core.
VIDEO_FRAMES, CLIP_FRAMES, VIEWS = 64, 16, 5
SAMPLING_GAIN = 0.10                    # the claim: 5 clips >= centre clip + 10 points
SAMPLING = dict(train=1536, epochs=8, test=256)
QUICK_SAMPLING = dict(train=48, epochs=1, test=32)

# frames: T frames of 16-frame 'order' videos, with compare's recipe (2,048 clips; C3D one pass,
# TimeSformer four).
FRAME_COUNTS = (4, 8, 16)
FRAMES_MODELS = ('c3d', 'timesformer')
QUICK_FRAMES = dict(clips=48, epochs=1)

# data: nested subsets of one rendering (the first n clips), each trained for the full recipe's
# steps.
DATA_SIZES = (256, 512, 1024, 2048)
QUICK_DATA_SIZES = (32, 64)
DATA_MODELS = ('c3d', 'timesformer')
DATA_LEVEL = 0.9                        # the anchor claim at the largest size: compare's 90 %

CELL_TIMEOUT = compare.CELL_TIMEOUT     # seconds without a finished cell: the run is abandoned


# ---- loaders ------------------------------------------------------------------------------------

class VideoClipLoader:
    """Batches (clips, labels) of Tensors cut from in-memory videos by a temporal sampler.

    videos: uint8 (N, 3, T, H, W), as decoded frames are (values / 255 make the float clip);
    sampler(T, rng) -> (t,) frame indices, or a list of K such arrays (MultiClip), which gives
    6-D (n, K, 3, t, H, W) batches that `evaluate` scores view by view and averages.  A random
    sampler draws from a generator seeded by (seed, epoch, video index), so every epoch crops anew
    and a run repeats; shuffle=True reorders the videos every epoch from (seed, epoch)."""

    def __init__(self, videos, labels, sampler, batch_size, shuffle=False, seed=0):
        if videos.dtype != np.uint8 or videos.ndim != 5:
            raise ValueError(f"VideoClipLoader: videos must be uint8 (N, 3, T, H, W), got "
                             f"{videos.dtype} of shape {videos.shape}")
        if len(labels) != len(videos):
            raise ValueError(f"VideoClipLoader: {len(videos)} videos but {len(labels)} labels")
        self.videos, self.labels, self.sampler = videos, np.asarray(labels, np.int64), sampler
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return -(-len(self.videos) // self.batch_size)

    def _clip(self, index):
        frames = self.sampler(self.videos.shape[2],
                              rng=np.random.default_rng([self.seed, self.epoch, int(index)]))
        video = self.videos[index]                                    # (3, T, H, W)
        if isinstance(frames, list):                                  # (K, 3, t, H, W)
            return np.stack([video[:, f] for f in frames])
        return video[:, frames]                                       # (3, t, H, W)

    def __iter__(self):
        n = len(self.videos)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        for a in range(0, n, self.batch_size):
            rows = order[a:a + self.batch_size]
            clips = np.stack([self._clip(i) for i in rows]).astype(np.float32) / 255
            yield Tensor(clips), Tensor(self.labels[rows])


# ---- shared steps -------------------------------------------------------------------------------

_DATA = {}                              # per process: rendered data, keyed by what they are


def _cached(key, make):
    if key not in _DATA:
        _DATA[key] = make()
    return _DATA[key]


def _event_videos(num_videos, seed):
    """(uint8 (N, 3, T, S, S) videos, int64 labels, chance, num_classes) of the 'event' family,
    rendered 128 at a time (1,024 float videos would hold 800 MB)."""
    data = SyntheticActions('event', num_videos, num_frames=VIDEO_FRAMES, size=SIZE, seed=seed)
    videos = np.empty((num_videos, 3, VIDEO_FRAMES, SIZE, SIZE), np.uint8)
    labels = np.empty(num_videos, np.int64)
    for a in range(0, num_videos, 128):
        clips, labels[a:a + 128], _ = data.render(np.arange(a, min(a + 128, num_videos)))
        videos[a:a + 128] = np.rint(clips * 255)
    return videos, labels, data.chance, data.num_classes


def _warm_up(model_name, overrides, shape, recipe):
    """One training step of a throwaway model on zeros: loads the compiled kernels this model's
    shapes use, so that the cell's measured time is the training's.  It draws from tensorlite's
    generator, which the cell reseeds before building its own model."""
    from . import functional as F
    from .models import build_model
    model = build_model(model_name, num_classes=2, **overrides)
    optimizer = compare.recipe_optimizer(recipe, model)
    loss = F.cross_entropy(model(Tensor(np.zeros(shape, np.float32))),
                           Tensor(np.arange(shape[0]) % 2))
    loss.backward()
    optimizer.step()


def _steps(recipe, clips):
    return recipe['epochs'] * -(-clips // recipe['batch_size'])


def _ms_per_clip(record):
    return 1e3 * record['train_seconds'] / (record['epochs'] * record['train_clips'])


def _order_data(clips, quick, seed):
    """compare's 'order' renderings: (train, test) as render_family gives them, cached."""
    test_clips = compare.QUICK_TEST_CLIPS if quick else compare.TEST_CLIPS
    return _cached(('order', clips, test_clips, seed), lambda: (
        compare.render_family('order', clips, seed),
        compare.render_family('order', test_clips, seed + compare.TEST_SEED_OFFSET)))


def _compare_cell(cell, data, model_overrides, **recipe_overrides):
    """compare.train_and_test on `data` after a warm-up step; the common record keys."""
    quick, seed = cell['quick'], cell['seed']
    recipe = compare.recipe_for(cell['model'], 'order', quick, **recipe_overrides)
    clip_shape = data[0][0].shape[1:]
    _warm_up(cell['model'], model_overrides, (2,) + clip_shape, recipe)
    r = compare.train_and_test(cell['model'], 'order', quick=quick, seed=seed, data=data,
                               model_overrides=model_overrides, **recipe_overrides)
    return {'experiment': cell['experiment'], 'model': r['model'], 'family': 'order',
            'chance': r['chance'], 'params': r['params'], 'train_seconds': r['train_seconds'],
            'train_ms_per_clip': _ms_per_clip(r), 'epochs': r['epochs'],
            'train_clips': r['train_clips'], 'steps': _steps(r['recipe'], r['train_clips']),
            'test_clips': r['test_clips'], 'recipe': r['recipe'], 'accuracy': r['accuracy'],
            'reversed_accuracy': r['reversed_accuracy'],
            'shuffled_accuracy': r['shuffled_accuracy']}


# ---- the cells ----------------------------------------------------------------------------------

def _sampling_cell(cell):
    from .models import build_model
    from .random import manual_seed
    from .train import evaluate, fit
    quick, seed = cell['quick'], cell['seed']
    sizes = QUICK_SAMPLING if quick else SAMPLING
    videos, labels, chance, num_classes = _cached(
        ('event', sizes['train'], seed), lambda: _event_videos(sizes['train'], seed))
    test_videos, test_labels, _, _ = _cached(
        ('event', sizes['test'], seed + compare.TEST_SEED_OFFSET),
        lambda: _event_videos(sizes['test'], seed + compare.TEST_SEED_OFFSET))
    # the recipe of compare's C3D on 'motion' (the event's label is a direction of motion)
    recipe = compare.recipe_for('c3d', 'motion', quick, clips=sizes['train'],
                                epochs=sizes['epochs'])
    if cell['train_sampler'] == 'random_crop':
        stride = 1
        train_sampler = RandomTemporalCrop(CLIP_FRAMES, stride=stride)
        centre = RandomTemporalCrop(CLIP_FRAMES, stride=stride, training=False)
    else:
        stride = VIDEO_FRAMES // CLIP_FRAMES                        # the clip spans the video
        train_sampler = centre = UniformStride(CLIP_FRAMES, stride=stride)
    views = MultiClip(VIEWS, CLIP_FRAMES, stride=stride)

    _warm_up('c3d', {}, (2, 3, CLIP_FRAMES, SIZE, SIZE), recipe)
    manual_seed(seed)
    model = build_model('c3d', num_classes=num_classes)
    loader = VideoClipLoader(videos, labels, train_sampler, recipe['batch_size'], shuffle=True,
                             seed=seed)
    started = time.perf_counter()
    fit(model, loader, optimizer=compare.recipe_optimizer(recipe, model), epochs=recipe['epochs'],
        clip_grad_norm=recipe['clip_grad_norm'], progress=False, seed=seed)
    train_seconds = time.perf_counter() - started

    def accuracy(sampler):
        return evaluate(model, VideoClipLoader(test_videos, test_labels, sampler, 32),
                        topk=(1,))['top1']

    # which frames show the event: its square is the only saturated thing in the video
    saturation = (test_videos.max(axis=1).astype(np.int16)
                  - test_videos.min(axis=1)) > 0.3 * 255             # (N, T, H, W)
    shown = saturation.sum(axis=(2, 3)) >= 4                          # (N, T)
    in_centre = shown[:, centre(VIDEO_FRAMES)].any(axis=1)
    return {'experiment': 'sampling', 'model': 'c3d', 'family': 'event',
            'chance': float(chance), 'params': compare._count_params(model),
            'train_seconds': train_seconds,
            'train_ms_per_clip': 1e3 * train_seconds / (recipe['epochs'] * len(videos)),
            'epochs': recipe['epochs'], 'train_clips': len(videos),
            'steps': _steps(recipe, len(videos)), 'test_clips': len(test_videos),
            'recipe': recipe, 'train_sampler': cell['train_sampler'],
            'video_frames': VIDEO_FRAMES, 'clip_frames': CLIP_FRAMES, 'stride': stride,
            'views': VIEWS, 'centre_accuracy': accuracy(centre),
            'multi_clip_accuracy': accuracy(views), 'event_in_centre': float(in_centre.mean())}


def _frames_cell(cell):
    from .models import build_model, summary
    quick, seed, frames = cell['quick'], cell['seed'], cell['frames']
    clips = QUICK_FRAMES['clips'] if quick else compare.recipe_for(cell['model'], 'order')['clips']
    (x_train, y_train, chance, classes), (x_test, y_test, _, _) = _order_data(clips, quick, seed)
    source = x_train.shape[2]
    stride = source // frames
    picked = UniformStride(frames, stride=stride)(source)             # spans the whole video
    data = ((np.ascontiguousarray(x_train[:, :, picked]), y_train, chance, classes),
            (np.ascontiguousarray(x_test[:, :, picked]), y_test, chance, classes))
    overrides = {'frames': frames}
    if cell['model'] == 'c3d':
        overrides['clamp_time_pools'] = True          # 4 and 8 frames; 16 is compare's C3D
    recipe = dict(clips=clips, **(dict(epochs=QUICK_FRAMES['epochs']) if quick else {}))
    record = _compare_cell(cell, data, overrides, **recipe)
    cost = summary(build_model(cell['model'], num_classes=classes, **overrides),
                   (1, 3, frames, SIZE, SIZE))
    record.update(frames=frames, video_frames=source, stride=stride,
                  activation_bytes=int(cost.total_activation_bytes), macs=int(cost.total_macs))
    return record


def _data_cell(cell):
    quick, seed = cell['quick'], cell['seed']
    sizes = QUICK_DATA_SIZES if quick else DATA_SIZES
    largest = max(sizes)
    full = compare.recipe_for(cell['model'], 'order', quick, clips=largest,
                              **(dict(epochs=1) if quick else {}))
    (x_train, y_train, chance, classes), test = _order_data(largest, quick, seed)
    clips = cell['clips']
    data = ((x_train[:clips], y_train[:clips], chance, classes), test)
    overrides = dict(clips=clips, min_steps=_steps(full, largest),
                     **(dict(epochs=1) if quick else {}))
    return _compare_cell(cell, data, {}, **overrides)


_CELL = {'sampling': _sampling_cell, 'frames': _frames_cell, 'data': _data_cell}


def _cells(name, quick, seed):
    """The cells of one experiment, as plain dicts (they travel to worker processes), each with
    a rough cost (clips seen x ms per clip) to start the longest first."""
    base = {'experiment': name, 'quick': quick, 'seed': seed}
    if name == 'sampling':
        return [dict(base, model='c3d', train_sampler=s, cost=1.0)
                for s in ('random_crop', 'uniform_stride')]
    if name == 'frames':
        return [dict(base, model=m, frames=t,
                     cost=compare.recipe_for(m, 'order')['epochs'] * t)
                for m in FRAMES_MODELS for t in FRAME_COUNTS]
    sizes = QUICK_DATA_SIZES if quick else DATA_SIZES
    return [dict(base, model=m, clips=n, cost=compare.recipe_for(m, 'order')['epochs'])
            for m in DATA_MODELS for n in sizes]


def _run_cell(cell):
    return _CELL[cell['experiment']](cell)


def _run_in_workers(cells, jobs):
    """Yield (cell, record) as spawned workers finish them; compare's worker set-up (one BLAS and
    one Numba thread each, read from the environment as they start); a worker that takes more
    than CELL_TIMEOUT seconds over a cell, an error or Ctrl-C stops them all."""
    ordered = sorted(range(len(cells)), key=lambda k: -cells[k]['cost'])
    pool = compare.one_thread_pool(min(jobs, len(cells)))
    try:
        pending = [(k, pool.apply_async(_run_cell, (cells[k],))) for k in ordered]
        started = time.monotonic()
        while pending:
            done = [(k, result) for k, result in pending if result.ready()]
            for k, result in done:
                yield k, result.get()
                started = time.monotonic()
            pending = [(k, result) for k, result in pending if not result.ready()]
            if pending:
                if time.monotonic() - started > CELL_TIMEOUT:
                    raise TimeoutError(f"experiments: no cell finished within {CELL_TIMEOUT} s; "
                                       f"{len(pending)} were still running or waiting")
                pending[0][1].wait(0.5)
        pool.close()
    finally:
        pool.terminate()                         # Ctrl-C or an error: stop the other cells
        pool.join()


def run_experiment(name, quick=False, seed=0, progress=True, log=print, jobs=1):
    """Run experiment `name` (one of EXPERIMENTS) and return its result dict (see the module doc).
    quick=True runs the tiny version; progress=True logs one line per cell through `log` as it
    is done; jobs > 1 runs that many cells at once in worker processes."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiments: unknown experiment {name!r}; expected one of "
                         f"{', '.join(EXPERIMENTS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"experiments: jobs must be a positive int, got {jobs!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"experiments: seed must be an int >= 0, got {seed!r}")
    started = time.perf_counter()
    cells = _cells(name, bool(quick), int(seed))
    records = [None] * len(cells)
    if jobs == 1 or len(cells) == 1:
        finished = ((k, _run_cell(cell)) for k, cell in enumerate(cells))
    else:
        finished = _run_in_workers(cells, jobs)
    for k, record in finished:
        records[k] = record
        if progress:
            log(_progress_line(record))
    claims, findings = _conclusions(name, records)
    return {'experiment': name, 'records': records, 'claims': claims, 'findings': findings,
            'seconds': time.perf_counter() - started, 'quick': bool(quick)}


def _progress_line(r):
    if r['experiment'] == 'sampling':
        what = (f"c3d trained on {r['train_sampler']:<14s} centre clip "
                f"{r['centre_accuracy']:6.1%}  {r['views']} clips {r['multi_clip_accuracy']:6.1%}")
    elif r['experiment'] == 'frames':
        what = (f"{r['model']:>11s} on {r['frames']:2d} frames  accuracy {r['accuracy']:6.1%}  "
                f"{r['train_ms_per_clip']:5.1f} ms/clip  "
                f"{r['activation_bytes'] / 2 ** 20:5.2f} MiB/clip")
    else:
        what = (f"{r['model']:>11s} on {r['train_clips']:5d} clips  accuracy {r['accuracy']:6.1%}"
                f"  ({r['steps']} steps)")
    return f"{what}  ({r['train_seconds']:.1f} s)"


# ---- claims and findings ------------------------------------------------------------------------

def _points(a, b):
    """a - b in percentage points, signed: '+12.5 points'."""
    return f"{100 * (a - b):+.1f} points"


def _sampling_conclusions(records):
    by = {r['train_sampler']: r for r in records}
    crop, uniform = by['random_crop'], by['uniform_stride']
    gain = crop['multi_clip_accuracy'] - crop['centre_accuracy']
    claims = [[f"c3d on random 16-frame crops: {crop['views']} clips averaged >= centre clip + "
               f"{100 * SAMPLING_GAIN:.0f} points", bool(gain >= SAMPLING_GAIN)]]
    findings = [
        f"Random 16-frame crops (stride 1) of {crop['video_frames']}-frame videos: the centre "
        f"clip reached {crop['centre_accuracy']:.1%} (chance {crop['chance']:.0%}), "
        f"{crop['views']} clips averaged {crop['multi_clip_accuracy']:.1%} "
        f"({_points(crop['multi_clip_accuracy'], crop['centre_accuracy'])}); the centre clip "
        f"showed any of the event in {crop['event_in_centre']:.0%} of the test videos, so a "
        "single clip cannot do much better than that share plus chance on the rest.",
        f"Uniform stride {uniform['stride']} (16 frames spanning the whole video, which always "
        f"include the event): {uniform['centre_accuracy']:.1%} on its one clip, "
        f"{uniform['multi_clip_accuracy']:.1%} with {uniform['views']} offset clips averaged; "
        + _versus(uniform['centre_accuracy'], crop['multi_clip_accuracy'],
                  "its single clip", f"the random-crop model's {crop['views']}-clip average",
                  f"at a {crop['views']}th of the test cost"),
    ]
    return claims, findings


def _versus(a, b, a_name, b_name, note=''):
    """A sentence comparing two accuracies with the TIE margin."""
    if abs(a - b) <= TIE:
        verdict = f"{a_name} matched {b_name} ({a:.1%} against {b:.1%}, within the tie margin)"
    elif a > b:
        verdict = f"{a_name} beat {b_name} by {100 * (a - b):.1f} points"
    else:
        verdict = f"{a_name} fell {100 * (b - a):.1f} points short of {b_name}"
    return verdict + (f", {note}." if note else ".")


def _frames_conclusions(records):
    claims, findings = [], []
    models = [m for m in FRAMES_MODELS if any(r['model'] == m for r in records)]
    for model in models:
        rows = sorted((r for r in records if r['model'] == model), key=lambda r: r['frames'])
        counts = '/'.join(str(r['frames']) for r in rows)
        ms = [r['train_ms_per_clip'] for r in rows]
        memory = [r['activation_bytes'] for r in rows]
        claims.append([f"{model}: training ms per clip grows with frames ({counts})",
                       bool(all(a < b for a, b in zip(ms, ms[1:])))])
        claims.append([f"{model}: activation memory per clip grows with frames ({counts})",
                       bool(all(a < b for a, b in zip(memory, memory[1:])))])
        few, most = rows[0], rows[-1]
        accuracies = ', '.join(f"{r['frames']} frames {r['accuracy']:.1%}" for r in rows)
        cost = (f"{most['frames']} frames cost {ms[-1] / ms[0]:.1f}x the training time and "
                f"{memory[-1] / memory[0]:.1f}x the activation memory of {few['frames']}")
        change = most['accuracy'] - few['accuracy']
        if max(r['accuracy'] for r in rows) <= few['chance'] + TIE:
            verdict = (f"at chance (within {100 * TIE:.0f} points) with every number of frames: "
                       "nothing was learned in this budget, so the accuracy says nothing about "
                       "the frames")
        elif abs(change) <= TIE:
            verdict = (f"accuracy did not depend on the frames within {100 * TIE:.0f} points, so "
                       "here the extra frames bought cost, not accuracy")
        elif change > 0:
            verdict = (f"{few['frames']} frames lost {100 * change:.1f} points against "
                       f"{most['frames']}")
            # Is the signal still in the few frames?  It is if another model read it there.
            readers = [r for r in records if r['model'] != model and r['frames'] == few['frames']
                       and r['accuracy'] >= most['accuracy'] - TIE]
            if readers:
                other = max(readers, key=lambda r: r['accuracy'])
                verdict += (f", but {other['model']} reached {other['accuracy']:.1%} on the same "
                            f"{few['frames']} frames ({other['epochs']} passes, {other['steps']} "
                            "steps): the order is still in them, so what fewer frames cost "
                            f"{model} is what it learned in its own recipe ({few['epochs']} "
                            f"pass(es), {few['steps']} steps), not the signal")
            else:
                verdict += (f", and no model read the order from {few['frames']} frames "
                            f"{few['stride']} apart as well: there a step between two frames can "
                            "span the turn and mix both motions, so fewer frames missed part of "
                            "the signal")
        else:
            verdict = (f"{few['frames']} frames did {100 * -change:.1f} points better than "
                       f"{most['frames']} in this budget")
        findings.append(f"{model} on order: {accuracies} (chance {few['chance']:.0%}); {cost}; "
                        f"{verdict}.")
    return claims, findings


def _data_conclusions(records):
    claims, findings = [], []
    by = {(r['model'], r['train_clips']): r for r in records}
    models = [m for m in DATA_MODELS if any(r['model'] == m for r in records)]
    sizes = sorted({r['train_clips'] for r in records})
    for model in models:
        top = by.get((model, sizes[-1]))
        claims.append([f"{model} >= {100 * DATA_LEVEL:.0f} % on order with {sizes[-1]:,d} "
                       "clips", bool(top['accuracy'] >= DATA_LEVEL)])
        curve = ', '.join(f"{n:,d}: {by[model, n]['accuracy']:.1%}" for n in sizes)
        findings.append(f"{model} on order by training clips ({curve}), "
                        f"{by[model, sizes[0]]['steps']} optimizer steps at every size.")
    if len(models) == 2:
        a, b = models
        winners = []
        for n in sizes:
            gap = by[a, n]['accuracy'] - by[b, n]['accuracy']
            winners.append('tie' if abs(gap) <= TIE else a if gap > 0 else b)
        per_size = ', '.join(f"{n:,d}: {w}" for n, w in zip(sizes, winners))
        gains = {m: by[m, sizes[-1]]['accuracy'] - by[m, sizes[0]]['accuracy'] for m in models}
        if abs(gains[a] - gains[b]) <= TIE:
            slope = (f"the two curves rise alike from {sizes[0]:,d} to {sizes[-1]:,d} clips "
                     f"({a} {_points(gains[a], 0)}, {b} {_points(gains[b], 0)})")
        else:
            steep = max(models, key=lambda m: gains[m])
            flat = a if steep == b else b
            slope = (f"{steep}'s curve is the steeper ({_points(gains[steep], 0)} from "
                     f"{sizes[0]:,d} to {sizes[-1]:,d} clips, against {_points(gains[flat], 0)} "
                     f"for {flat})")
        if len(set(winners) - {'tie'}) > 1:
            ranking = "the ranking flips with the amount of data"
        elif set(winners) == {'tie'}:
            ranking = "neither model wins at any size"
        else:
            leader = next(w for w in winners if w != 'tie')
            ranking = f"{leader} wins or ties at every size"
        findings.append(f"Which model wins (ties within {100 * TIE:.0f} points): {per_size}; "
                        f"{ranking}; {slope}.  At this scale 'the transformer beats the CNN' is "
                        "a question of how much data there is, to be measured, not assumed.")
    return claims, findings


def _conclusions(name, records):
    return {'sampling': _sampling_conclusions, 'frames': _frames_conclusions,
            'data': _data_conclusions}[name](records)


# ---- the table ----------------------------------------------------------------------------------

def format_experiment(result):
    """The result as text: a table of the records, then the claims ('yes' / 'NO ') and the
    findings."""
    missing = [k for k in RESULT_KEYS if k not in result] if isinstance(result, dict) else None
    if missing is None or missing:
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ValueError(f"format_experiment: expected a run_experiment result with the keys "
                         f"{list(RESULT_KEYS)}, got {got}")
    name, records = result['experiment'], result['records']
    if name == 'sampling':
        header = ('training sampler', 'stride', 'centre clip %', f'{VIEWS} clips %',
                  'event in centre %', 'ms/clip', 'train s')
        rows = [(r['train_sampler'], str(r['stride']), f"{100 * r['centre_accuracy']:.1f}",
                 f"{100 * r['multi_clip_accuracy']:.1f}", f"{100 * r['event_in_centre']:.0f}",
                 f"{r['train_ms_per_clip']:.1f}", f"{r['train_seconds']:.1f}") for r in records]
    elif name == 'frames':
        header = ('model', 'frames', 'accuracy %', 'reversed %', 'ms/clip', 'act MiB/clip',
                  'MMACs', 'train s')
        rows = [(r['model'], str(r['frames']), f"{100 * r['accuracy']:.1f}",
                 f"{100 * r['reversed_accuracy']:.1f}", f"{r['train_ms_per_clip']:.1f}",
                 f"{r['activation_bytes'] / 2 ** 20:.2f}", f"{r['macs'] / 1e6:.1f}",
                 f"{r['train_seconds']:.1f}") for r in records]
    else:
        header = ('model', 'train clips', 'epochs', 'steps', 'accuracy %', 'reversed %',
                  'train s')
        rows = [(r['model'], f"{r['train_clips']:,d}", str(r['epochs']), str(r['steps']),
                 f"{100 * r['accuracy']:.1f}", f"{100 * r['reversed_accuracy']:.1f}",
                 f"{r['train_seconds']:.1f}") for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = ' | '.join(h.rjust(w) for h, w in zip(header, widths))
    lines = [f"experiment {name}" + (' (quick)' if result['quick'] else ''), line,
             '-' * len(line)]
    lines += [' | '.join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    chance = records[0]['chance'] if records else None
    lines.append(f"chance {100 * chance:.1f} %; {len(records)} cells in "
                 f"{result['seconds']:.0f} s wall" if chance is not None else '')
    lines.append('claims:')
    lines += [f"  {'yes' if passed else 'NO '}  {claim}" for claim, passed in result['claims']]
    lines.append('findings:')
    lines += [f"  - {finding}" for finding in result['findings']]
    return '\n'.join(lines)
