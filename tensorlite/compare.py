"""`tensorlite compare`: the lesson's claims, measured.

Ten architectures (tiny presets) are trained by the same loop -- `tensorlite.train.fit`: loss,
gradient, backprop, step -- on four synthetic families, and each is tested on held-out clips as
they are, with their frames reversed and with their frames shuffled:

    scene     the label is in every single frame (the background)   -> a single frame suffices
    occluded  the same scenes, but a grey occluder hides all of each frame except one window,
              drawn anew in every frame, and in half the frames all of it
                                                                    -> one frame tells only part
                                                                       of the time, several do
    motion    the label is in the motion between frames            -> needs two or more frames
    order     the label is in the order of two motions; clip 2k + 1 is clip 2k played backwards
                                                                    -> needs the order of frames

The lesson's shape (CLAIMS; `lesson_checks` evaluates them): every model >= 90 % on scene; the
single-frame baseline and late fusion near chance (within 12 points) on motion and order; late
fusion, which averages every frame's class scores, >= 85 % on occluded and 15 points above
single-frame there; every model that reads time >= 85 % on motion; 3D convolution (C3D, I3D, SlowFast),
two-stream, CNN+LSTM and the transformers (TimeSformer, ViViT) >= 90 % on order, with reversed
clips at least 30 points lower (they read the order: a reversed clip is the other class).
`lesson_findings` adds what is reported rather than claimed: early fusion on order, and
two-stream's optical-flow cost beside its network's.

    from tensorlite.compare import run_compare, format_table, lesson_checks
    records = run_compare(quick=True)
    print(format_table(records))

Every record: model, family, accuracy, reversed_accuracy, shuffled_accuracy, chance, params,
train_seconds (fit's wall time; for two-stream also the optical flow of the training clips),
clips_per_second (training clips per second of train_seconds), epochs, train_clips, test_clips,
flow_seconds (two-stream: Farnebaeck flow of all clips it saw, train and test, else 0.0),
flow_clips (how many clips' flow that was), network_ms_per_clip (train_seconds without the flow,
per clip and epoch), input_numbers (numbers one clip is to the model: 3 x T x H x W, and the flow
stack for two-stream), activation_mb (MiB of activations per clip, `summary`'s), recipe.

The recipes (optimizer, learning rate, epochs) are per model, fixed here, with a few per-family
changes; the number of fresh training clips is per family (FAMILY_CLIPS), the same for every
model.  Test clips come from another seed.  Data are rendered once per family and shared.
"""
import time

import numpy as np

from . import backend
from .autograd.tensor import Tensor
from .data.synthetic import SyntheticActions
from .data.twostream import centred_flow_stack

MODELS = ('single_frame', 'late_fusion', 'early_fusion', 'c3d', 'i3d', 'two_stream', 'slowfast',
          'cnn_lstm', 'timesformer', 'vivit')
FAMILIES = ('scene', 'occluded', 'motion', 'order')
RECORD_KEYS = ('model', 'family', 'accuracy', 'reversed_accuracy', 'shuffled_accuracy', 'chance',
               'params', 'train_seconds', 'clips_per_second', 'epochs', 'train_clips',
               'test_clips', 'flow_seconds', 'flow_clips', 'network_ms_per_clip', 'input_numbers',
               'activation_mb', 'recipe')

NUM_FRAMES, SIZE = 16, 32
FLOW_LENGTH = 10                     # the two-stream temporal stream's stack of L flows
TEST_SEED_OFFSET = 1000              # test clips come from another seed: never seen in training

# How many fresh training clips each family gets (each seen `epochs` times), the same for every
# model: the budget goes where the lesson's claims are hardest to learn ('motion', 'order').  The
# quick run uses far fewer.
FAMILY_CLIPS = {'scene': 384, 'occluded': 1024, 'motion': 2048, 'order': 2048}
QUICK_FAMILY_CLIPS = {'scene': 128, 'occluded': 128, 'motion': 192, 'order': 320}
TEST_CLIPS, QUICK_TEST_CLIPS = 256, 128

# Per model: the optimizer and the number of epochs; 'families' holds what changes on one family
# (most often the epochs).  AdamW at 1e-3, batches of 16, no schedule.  Single-frame takes at
# least 96 steps at lr 3e-3 (what the 6 scenes need; it costs ~1 ms a clip), as many epochs as that
# takes.  The deeper and thinner models leave the chance plateau of 'motion' and 'order' only in
# their 3rd or 4th pass (docs/training.md gives what each took).
DEFAULT_RECIPE = dict(optimizer='adamw', lr=1e-3, weight_decay=1e-4, batch_size=16, epochs=1,
                      min_steps=0, clip_grad_norm=None)
RECIPES = {
    'single_frame': dict(min_steps=96, lr=3e-3),
    'late_fusion': dict(epochs=4),
    'early_fusion': dict(epochs=2, families={'motion': dict(epochs=4), 'order': dict(epochs=8)}),
    'c3d': dict(families={'scene': dict(epochs=2)}),
    'i3d': dict(epochs=4, clip_grad_norm=5.0),
    'two_stream': dict(epochs=2),
    'slowfast': dict(epochs=4),
    'cnn_lstm': dict(epochs=4),
    'timesformer': dict(epochs=4),
    'vivit': dict(epochs=3, families={'scene': dict(lr=3e-3)}),
}


def base_model(name):
    """The family of a registered variant: 'timesformer_joint' -> 'timesformer'."""
    if name in RECIPES:
        return name
    for base in sorted(RECIPES, key=len, reverse=True):
        if name.startswith(base + '_'):
            return base
    raise ValueError(f"compare: no recipe for model {name!r}: it is none of {', '.join(MODELS)} "
                     "or a variant of one")


def recipe_for(model, family, quick=False, **overrides):
    """The training settings of `model` on `family`: DEFAULT_RECIPE updated by RECIPES[model] (a
    variant such as 'late_fusion_max' takes its family's) and by its 'families' entry for
    `family`, the family's number of training clips
    ('clips'; the quick run's with quick=True), then `overrides`; 'epochs' is raised until the run
    takes at least 'min_steps' optimizer steps."""
    if family not in FAMILIES:
        raise ValueError(f"compare: unknown family {family!r}; expected one of "
                         f"{', '.join(FAMILIES)}")
    recipe = dict(DEFAULT_RECIPE)
    own = dict(RECIPES[base_model(model)])
    per_family = own.pop('families', {})
    recipe.update(own)
    recipe.update(per_family.get(family, {}))
    recipe['clips'] = (QUICK_FAMILY_CLIPS if quick else FAMILY_CLIPS)[family]
    recipe.update(overrides)
    batches = -(-recipe['clips'] // recipe['batch_size'])
    recipe['epochs'] = max(recipe['epochs'], -(-recipe['min_steps'] // batches))
    return recipe


class ArrayLoader:
    """Batches of in-memory arrays, as Tensors: (inputs..., target) tuples of `batch_size` rows,
    reshuffled every epoch from (seed, epoch) when shuffle=True (fit calls set_epoch)."""

    def __init__(self, arrays, batch_size, shuffle=False, seed=0):
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"ArrayLoader: arrays of different lengths {sorted(lengths)}")
        self.arrays, self.batch_size, self.shuffle, self.seed = arrays, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch_size)

    def __iter__(self):
        n = len(self.arrays[0])
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        for a in range(0, n, self.batch_size):
            rows = order[a:a + self.batch_size]
            yield tuple(Tensor(np.ascontiguousarray(x[rows])) for x in self.arrays)


def _flow_stacks(clips):
    """(N, 3, T, H, W) float clips -> (N, 2L, H, W) flow stacks of their centred L + 1 frames."""
    return np.stack([centred_flow_stack(clip, FLOW_LENGTH) for clip in clips])


def _activation_mb(model, shapes, device):
    """MiB of the leaf modules' outputs for one clip (`summary`'s activation memory: about what a
    training step keeps for backward, per clip)."""
    from .models import summary
    return summary(model, shapes if len(shapes) > 1 else shapes[0],
                   device=device).total_activation_bytes / 2 ** 20


def _count_params(model):
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def recipe_optimizer(recipe, model):
    """The recipe's optimizer over the model's parameters (optim.create_optimizer)."""
    from .optim import create_optimizer
    return create_optimizer(recipe['optimizer'], model.parameters(), recipe['lr'],
                            recipe['weight_decay'])


def render_family(family, num_clips, seed):
    """(clips float32 (N, 3, T, H, W), labels int64 (N,), chance, num_classes) of one synthetic
    family: N clips of seed `seed`."""
    data = SyntheticActions(family, num_clips, num_frames=NUM_FRAMES, size=SIZE, seed=seed)
    clips, labels, _ = data.render(np.arange(num_clips))
    return clips, labels, data.chance, data.num_classes


def train_and_test(model_name, family, quick=False, seed=0, device='cpu', progress=False,
                   data=None, model_overrides=None, **overrides):
    """Train one tiny model on one family with its recipe and test it: one record (see the
    module doc).  `data` may hold the family's rendered (train, test) arrays to share them;
    model_overrides go to build_model (e.g. {'batch_norm': False} for C3D), overrides to the
    recipe (e.g. epochs=3).  The experiments behind the recipes are such calls:

        train_and_test('c3d', 'order', model_overrides={'batch_norm': False})
    """
    from .models import build_model
    from .random import manual_seed
    from .train import fit, temporal_diagnostic
    recipe = recipe_for(model_name, family, quick, **overrides)
    test_clips = QUICK_TEST_CLIPS if quick else TEST_CLIPS
    if data is None:
        data = (render_family(family, recipe['clips'], seed),
                render_family(family, test_clips, seed + TEST_SEED_OFFSET))
    (x_train, y_train, chance, num_classes), (x_test, y_test, _, _) = data
    if len(x_train) < recipe['clips'] or len(x_test) < test_clips:
        raise ValueError(f"compare: the recipe wants {recipe['clips']} training and {test_clips} "
                         f"test clips, the data given hold {len(x_train)} and {len(x_test)}")
    x_train, y_train = x_train[:recipe['clips']], y_train[:recipe['clips']]
    x_test, y_test = x_test[:test_clips], y_test[:test_clips]

    manual_seed(seed)
    model = build_model(model_name, num_classes=num_classes, **(model_overrides or {}))
    optimizer = recipe_optimizer(recipe, model)
    two_stream = model_name.startswith('two_stream')
    flow_seconds, flow_clips = 0.0, 0
    started = time.perf_counter()
    train_arrays = [x_train]
    if two_stream:
        train_arrays.append(_flow_stacks(x_train))
        flow_seconds += time.perf_counter() - started
        flow_clips += len(x_train)
    train_flow_seconds = flow_seconds
    loader = ArrayLoader(train_arrays + [y_train], recipe['batch_size'], shuffle=True, seed=seed)
    fit(model, loader, optimizer=optimizer, epochs=recipe['epochs'], device=device,
        clip_grad_norm=recipe['clip_grad_norm'], progress=progress, seed=seed)
    train_seconds = time.perf_counter() - started

    test_arrays = [x_test]
    derive = None
    if two_stream:
        flow_started = time.perf_counter()
        test_arrays.append(_flow_stacks(x_test))
        flow_seconds += time.perf_counter() - flow_started
        flow_clips += len(x_test)

        def reflow(inputs):           # the flow of the reordered frames, not of the original ones
            nonlocal flow_seconds, flow_clips
            flow_started = time.perf_counter()
            flows = _flow_stacks(backend.as_numpy(inputs[0].data))
            flow_seconds += time.perf_counter() - flow_started
            flow_clips += len(flows)
            return inputs[0], Tensor(flows)
        derive = reflow
    test_loader = ArrayLoader(test_arrays + [y_test], 64)
    diagnostic = temporal_diagnostic(model, test_loader, device=device, seed=seed, derive=derive)
    shapes = [(1,) + x.shape[1:] for x in test_arrays]
    clip_seen = recipe['epochs'] * len(x_train)
    return {'model': model_name, 'family': family,
            'accuracy': diagnostic['accuracy'],
            'reversed_accuracy': diagnostic['reversed_accuracy'],
            'shuffled_accuracy': diagnostic['shuffled_accuracy'],
            'chance': float(chance), 'params': _count_params(model),
            'train_seconds': train_seconds,
            'clips_per_second': recipe['epochs'] * len(x_train) / train_seconds,
            'epochs': recipe['epochs'], 'train_clips': len(x_train), 'test_clips': len(x_test),
            'flow_seconds': flow_seconds, 'flow_clips': flow_clips,
            'network_ms_per_clip': 1e3 * (train_seconds - train_flow_seconds) / clip_seen,
            'input_numbers': int(sum(np.prod(shape) for shape in shapes)),
            'activation_mb': _activation_mb(model, shapes, device), 'recipe': recipe,
            **({'model_overrides': dict(model_overrides)} if model_overrides else {})}


def _check_names(names, known, what):
    if names is None:
        return list(known)
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"compare: unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}"
                         f"; expected some of {', '.join(known)}")
    return names


def run_compare(models=None, families=None, quick=False, seed=0, device='cpu', progress=True,
                log=print, jobs=1):
    """Train and test every model on every family (defaults: the ten MODELS, all three
    families; registered variants such as 'timesformer_joint' may be named too, and train with
    their family's recipe); returns the list of records (see the module doc), in model-major
    order.

    quick=True trains on fewer clips for fewer epochs and tests on fewer clips (the whole run
    within 2 minutes on 2 cores; the default run within 10).  progress=True logs one line per
    record through `log` as it is done.  jobs > 1 trains that many cells at once, each in its own
    worker process with one BLAS and one Numba thread (a cell's arithmetic is the same as with
    jobs=1; its train_seconds is measured inside its worker)."""
    from .models import list_models
    variants = [m for m in list_models() if m not in MODELS and any(
        m.startswith(base + '_') for base in MODELS)]
    models = list(MODELS) if models is None else _check_names(models, MODELS + tuple(variants),
                                                               'model')
    families = _check_names(families, FAMILIES, 'family')
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"compare: jobs must be a positive int, got {jobs!r}")
    cells = [(model, family) for model in models for family in families]
    clips = {family: max(recipe_for(m, family, quick)['clips'] for m in models)
             for family in families}

    def report(record):
        if progress:
            log(f"{record['model']:>13s} on {record['family']:<6s} accuracy "
                f"{record['accuracy']:6.1%}  reversed {record['reversed_accuracy']:6.1%}  "
                f"shuffled {record['shuffled_accuracy']:6.1%}  ({record['train_seconds']:.1f} s)")

    from . import distributed
    if distributed.get_world_size() > 1:
        return _run_on_ranks(cells, clips, quick, seed, device, report)
    if jobs == 1 or len(cells) == 1:
        test_clips = QUICK_TEST_CLIPS if quick else TEST_CLIPS
        data = {family: (render_family(family, clips[family], seed),
                         render_family(family, test_clips, seed + TEST_SEED_OFFSET))
                for family in families}
        records = []
        for model, family in cells:
            records.append(train_and_test(model, family, quick=quick, seed=seed, device=device,
                                          data=data[family]))
            report(records[-1])
        return records
    done = {}
    for record in _run_in_workers(cells, clips, quick, seed, device, jobs):
        done[record['model'], record['family']] = record
        report(record)
    return [done[cell] for cell in cells]


def _run_on_ranks(cells, clips, quick, seed, device, report):
    """run_compare under `mpiexec -n N` (an initialized process group of N ranks): the cells,
    longest first, are dealt out round-robin to the ranks; each rank trains its own (one after the
    other, with the data rendered from the same seed as a single process would), and every rank
    gets every record (all_gather_object), returned in model-major order. `jobs` is not used:
    the ranks are the workers."""
    from . import distributed
    rank, world = distributed.get_rank(), distributed.get_world_size()
    ordered = sorted(cells, key=lambda cell: -_cell_cost(*cell, quick))
    test_clips = QUICK_TEST_CLIPS if quick else TEST_CLIPS
    mine, data = [], {}
    for model, family in ordered[rank::world]:
        if family not in data:
            data[family] = (render_family(family, clips[family], seed),
                            render_family(family, test_clips, seed + TEST_SEED_OFFSET))
        mine.append(train_and_test(model, family, quick=quick, seed=seed, device=device,
                                   data=data[family]))
        report(mine[-1])
    gathered = [None] * world
    distributed.all_gather_object(gathered, mine)
    done = {(r['model'], r['family']): r for part in gathered for r in part}
    return [done[cell] for cell in cells]


# Worker processes of run_compare(jobs > 1).  They are spawned, not forked (a fork would inherit
# the parent's BLAS and Numba thread pools mid-use), with one BLAS and one Numba thread each, and
# each renders the families it is given (the data are a pure function of the seed: every worker
# sees the same clips as a single process would).
_WORKER_DATA = {}


def default_jobs():
    """The CLI's default number of worker processes: the CPU cores this process may use, at most
    4 (each worker keeps the clips of the families it has trained on: up to about 1 GB)."""
    import os
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return max(1, min(4, cores or 1))


def _worker_cell(task):
    model, family, clips, quick, seed, device = task
    key = (family, clips, quick, seed)
    if key not in _WORKER_DATA:                 # cells of all families come in any order
        test_clips = QUICK_TEST_CLIPS if quick else TEST_CLIPS
        _WORKER_DATA[key] = (render_family(family, clips, seed),
                             render_family(family, test_clips, seed + TEST_SEED_OFFSET))
    return train_and_test(model, family, quick=quick, seed=seed, device=device,
                          data=_WORKER_DATA[key])


def _cell_cost(model, family, quick):
    """A rough ordering key: training clips seen.  The longest cells start first, so that the
    workers finish together."""
    recipe = recipe_for(model, family, quick)
    return recipe['clips'] * recipe['epochs']


ONE_THREAD = {'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
              'NUMBA_NUM_THREADS': '1'}
CELL_TIMEOUT = 1800                  # seconds without a finished cell before a run is abandoned
                                     # (the longest default cell takes ~80 s)


def one_thread_pool(processes):
    """A pool of `processes` spawned workers, each started with one BLAS and one Numba thread
    (the variables are set for the spawn only, then restored).  Also tensorlite.experiments'."""
    import multiprocessing
    import os
    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update(ONE_THREAD)               # read by the spawned workers as they start
    try:
        return multiprocessing.get_context('spawn').Pool(processes)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_in_workers(cells, clips, quick, seed, device, jobs):
    import multiprocessing
    ordered = sorted(cells, key=lambda cell: -_cell_cost(*cell, quick))
    tasks = [(model, family, clips[family], quick, seed, device) for model, family in ordered]
    pool = one_thread_pool(min(jobs, len(cells)))
    try:
        results = pool.imap_unordered(_worker_cell, tasks)
        for _ in tasks:
            try:
                yield results.next(timeout=CELL_TIMEOUT)
            except multiprocessing.TimeoutError as e:
                raise TimeoutError(f"compare: no cell finished within {CELL_TIMEOUT} s") from e
        pool.close()
    finally:
        pool.terminate()                         # Ctrl-C or an error: stop the other cells
        pool.join()



def format_table(records):
    """One row per model: accuracy per family (original / reversed / shuffled frames), chance,
    parameters, the input scale (numbers the model reads per clip, and MiB of activations per
    clip, from `summary`), training seconds and clips/s (summed and averaged over the
    families)."""
    families = [f for f in FAMILIES if any(r['family'] == f for r in records)]
    models = []
    for r in records:
        if r['model'] not in models:
            models.append(r['model'])
    by_key = {(r['model'], r['family']): r for r in records}
    width = max([len('model')] + [len(m) for m in models])
    cell = max([20] + [len(f + ' acc/rev/shuf') for f in families])
    header = f"{'model':<{width}s}" + ''.join(f" | {f + ' acc/rev/shuf':^{cell}s}"
                                              for f in families) \
        + f" | {'params':>7s} | {'in/clip':>7s} | {'act MB':>6s} | {'train s':>7s} | {'clips/s':>7s}"
    lines = [header, '-' * len(header)]
    for model in models:
        row = f"{model:<{width}s}"
        seconds, clips, last = 0.0, 0, None
        for family in families:
            r = by_key.get((model, family))
            if r is None:
                row += f" | {'-':^{cell}s}"
                continue
            row += (f" | {100 * r['accuracy']:5.1f} {100 * r['reversed_accuracy']:5.1f} "
                    f"{100 * r['shuffled_accuracy']:5.1f}".ljust(cell + 3))
            seconds += r['train_seconds']
            clips += r['epochs'] * r['train_clips']
            last = r
        row += (f" | {last['params']:>7,d} | {last['input_numbers']:>7,d} | "
                f"{last['activation_mb']:6.2f} | {seconds:7.1f} | "
                f"{clips / seconds if seconds else 0:7.0f}")
        lines.append(row)
    chance = '  '.join(f"{f} {100 * next(r['chance'] for r in records if r['family'] == f):.1f} %"
                       for f in families)
    lines.append(f"chance: {chance}   (accuracies in %, on held-out clips as they are / "
                 "reversed / shuffled; in/clip: numbers one clip is to the model; act MB: "
                 "activations per clip)")
    return '\n'.join(lines)


# The lesson's claims, as checks on the records: (what, the (model, family) cells it reads,
# test(cells) -> bool, where cells maps (model, family) to its record).
NEAR_CHANCE = 0.12                   # "near chance": within 12 points of the chance level
TIME_READERS = ('early_fusion', 'c3d', 'i3d', 'two_stream', 'slowfast', 'cnn_lstm', 'timesformer',
                'vivit')                                   # every model that reads time
ORDER_READERS = TIME_READERS[1:]     # early fusion's range is the clip: reported, not claimed
REVERSED_DROP = 0.30                 # reversed clips at least 30 points lower on 'order'


def _near_chance(model, family):
    return (f'{model} near chance on {family}', [(model, family)],
            lambda c: abs(c[model, family]['accuracy'] - c[model, family]['chance'])
            <= NEAR_CHANCE)


def _at_least(model, family, level):
    return (f'{model} >= {100 * level:.0f} % on {family}', [(model, family)],
            lambda c: c[model, family]['accuracy'] >= level)


def _reads_order(model):
    def test(c):
        r = c[model, 'order']
        return r['accuracy'] >= 0.9 and r['reversed_accuracy'] <= r['accuracy'] - REVERSED_DROP
    return (f'{model} >= 90 % on order, reversed clips >= {100 * REVERSED_DROP:.0f} points lower',
            [(model, 'order')], test)


def _fusion_gain():
    def test(c):
        return c['late_fusion', 'occluded']['accuracy'] >= \
            c['single_frame', 'occluded']['accuracy'] + 0.15
    return ('late_fusion >= single_frame + 15 points on occluded',
            [('late_fusion', 'occluded'), ('single_frame', 'occluded')], test)


CLAIMS = (
    tuple(_at_least(model, 'scene', 0.9) for model in MODELS)
    + (_near_chance('single_frame', 'motion'), _near_chance('single_frame', 'order'),
       _near_chance('late_fusion', 'motion'), _near_chance('late_fusion', 'order'),
       _at_least('late_fusion', 'occluded', 0.85), _fusion_gain())
    + tuple(_at_least(model, 'motion', 0.85) for model in TIME_READERS)
    + tuple(_reads_order(model) for model in ORDER_READERS))


def lesson_checks(records):
    """[(claim, passed)] for the lesson's claims whose cells are all in `records`."""
    cells = {(r['model'], r['family']): r for r in records}
    return [(what, bool(test(cells))) for what, needs, test in CLAIMS
            if all(cell in cells for cell in needs)]


def lesson_findings(records):
    """What the run shows beyond yes/no, as sentences: early fusion on 'order' as measured, and
    two-stream's optical-flow cost beside its network's."""
    cells = {(r['model'], r['family']): r for r in records}
    lines = []
    early = cells.get(('early_fusion', 'order'))
    if early is not None:
        reads = early['accuracy'] >= 0.9 and \
            early['reversed_accuracy'] <= early['accuracy'] - REVERSED_DROP
        lines.append(
            f"early_fusion on order: {early['accuracy']:.1%} (reversed "
            f"{early['reversed_accuracy']:.1%}, shuffled {early['shuffled_accuracy']:.1%}) after "
            f"{early['epochs']} passes. "
            + ("Its first layer stacks all 16 frames, so the temporal range that layer fixes is "
               "the whole clip here, and it reads the order; it cannot look further than those "
               "16 frames, and everything temporal happens in that one layer."
               if reads else
               "Its first layer sees all 16 frames at once, yet it did not learn the order in "
               "this budget: everything temporal must happen in that one layer."))
    flows = [r for r in records if r['model'].startswith('two_stream') and r['flow_clips']]
    if flows:
        flow_ms = 1e3 * sum(r['flow_seconds'] for r in flows) / sum(r['flow_clips'] for r in flows)
        seen = sum(r['epochs'] * r['train_clips'] for r in flows)
        network_ms = sum(r['network_ms_per_clip'] * r['epochs'] * r['train_clips']
                         for r in flows) / seen
        share = flow_ms / (flow_ms + network_ms)
        lines.append(
            f"two_stream: optical flow {flow_ms:.1f} ms per clip (Farnebaeck, {FLOW_LENGTH} "
            f"flows, computed once per clip), its network {network_ms:.1f} ms per clip and pass "
            f"(forward, backward, step): the flow is {share:.0%} of one pass over a clip.")
    return lines
