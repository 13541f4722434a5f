"""The one training loop, evaluation, and the temporal diagnostic: the same code for every model.

    model = build_model('c3d', num_classes=6)
    train = DataLoader(SyntheticActions('scene', 256), batch_size=16, shuffle=True, seed=0)
    val = DataLoader(SyntheticActions('scene', 64, seed=1), batch_size=32)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=5)
    history = fit(model, train, val, optimizer=optimizer, scheduler=scheduler, epochs=10,
                  checkpoint_dir='runs/c3d', resume=True, seed=0)
    print(evaluate(model, val)['top1'], temporal_diagnostic(model, val))

What every step is, for every architecture: model.train(); for each batch: zero the gradients,
forward, loss, backward, (clip the gradient norm), optimizer step; after the epoch, one scheduler
step. Nothing in the loop knows which model it trains.

Batches
-------
A batch is a tuple or list whose LAST element is the target and whose other elements are the
model's inputs, in order: `(clips, labels)` calls `model(clips)`; a two-stream batch
`(rgb, flow, labels)` calls `model(rgb, flow)`. Tensors are moved to `device`; anything else
(a list of captions) is passed as it is. A batch that is not a tuple/list of at least two elements
raises a TypeError saying so.

Epochs and the data order
-------------------------
Epochs are numbered from 1 everywhere a person reads them: the console, the history's `epoch`
column, error messages, and the `epoch` of the checkpoints fit writes (the number of epochs
finished; a checkpoint written by an older tensorlite, which counted from 0, is read as such).
Batches within an epoch are numbered from 1 too. The loaders are told the epoch's index from 0, as
PyTorch's samplers are: before epoch e (from 1) the training loader gets
`set_epoch(e - 1)` (when it has that method, as tensorlite's DataLoader does), so an epoch visits the
same shuffled order whether the run went straight through or was resumed, provided the loader is
built with the same explicit `seed` (a DataLoader without one draws its seed from tensorlite's
generator; resuming with a differently seeded loader warns); the validation loader
is set to epoch 0 before every evaluation, so each evaluation sees the same clips and crops.

Non-finite losses
-----------------
Every batch's loss is checked, and after backward its gradients, before the optimizer steps. At the
first NaN or inf, fit raises FloatingPointError naming the epoch, the batch and the first input,
parameter or gradient that is not finite (or, when all are finite, the largest parameter value:
an overflowing forward after a too-large step); the batch's forward leaves the running statistics
as they were, and the checkpoint on disk stays the last finite epoch. `nonfinite='skip'` skips
such a batch instead and counts it in the history (`nonfinite_batches`); an epoch that skipped
every batch raises. No epoch ever saves non-finite parameters.

Reproducibility
---------------
With `seed`, fit seeds tensorlite's generator, NumPy's global one and Python's `random` before
anything is drawn (the loaders' shuffles come from their own `seed` arguments). On the CPU a
seeded run then repeats bit for bit. With `checkpoint_dir`, '<dir>/last.npz' is written atomically
after every epoch with the model, optimizer, scheduler, epoch, every RNG state
(`capture_rng_state`), the run's config and the history so far; `resume=True` loads it when
present, restores the RNG states, and continues at the next epoch: the weights at the end equal,
bit for bit, those of a run that was never interrupted. With a validation loader, '<dir>/best.npz'
is also written (the same content) after every epoch whose validation accuracy beats all earlier
ones.
"""
import csv
import io
import json
import math
import os
import random as _python_random
import time
import warnings

import numpy as np

from .. import backend
from .. import random as tl_random
from .._atomic import atomic_write
from ..autograd import no_grad
from ..autograd.tensor import Tensor
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .metrics import accuracy, average_clip_scores, confusion_matrix, mean_class_accuracy

__all__ = ['fit', 'evaluate', 'temporal_diagnostic', 'unpack_batch', 'write_history', 'HISTORY_FIELDS',
           'seed_everything']

# the columns of the history, in the order of the CSV file
HISTORY_FIELDS = ('epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr',
                  'seconds', 'clips_per_second', 'nonfinite_batches')
NONFINITE = ('raise', 'skip')
CHECKPOINT_NAME = 'last.npz'
BEST_NAME = 'best.npz'            # the epoch of the best validation accuracy so far
# run_config key saying how the checkpoint's `epoch` counts; checkpoints without it counted from 0
_EPOCH_COUNT = 'epochs_finished'
PROGRESS = (True, False, 'epochs')


# ---- batches ------------------------------------------------------------------------------------

def unpack_batch(batch):
    """A batch -> (inputs, target): the last element is the target, the others (a tuple, in
    order) are the model's inputs."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        got = (f"a {type(batch).__name__} of {len(batch)} element(s)"
               if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}")
        raise TypeError(f"a batch must be a tuple or list (input, ..., target) with the target "
                        f"last and at least one model input, got {got}")
    return tuple(batch[:-1]), batch[-1]


def _to_device(x, device):
    return x.to(device) if isinstance(x, Tensor) and x.device != device else x


def _labels_of(target):
    """The target as a NumPy array of class indices, or None if it is not one ((N,) integers)."""
    if isinstance(target, Tensor):
        array = backend.as_numpy(target.data)
    elif isinstance(target, np.ndarray):
        array = target
    else:
        return None
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        return None
    return array


def _batch_size(inputs, target):
    """The number of clips in a batch: the target's length, else the first input's."""
    for x in (target,) + tuple(inputs):
        if isinstance(x, (Tensor, np.ndarray)) and x.ndim >= 1:
            return int(x.shape[0])
        if isinstance(x, (list, tuple)):
            return len(x)
    raise TypeError("cannot tell the batch size: neither the target nor an input is an array, "
                    "Tensor, list or tuple")


# ---- the training loop --------------------------------------------------------------------------

def fit(model, train_loader, val_loader=None, loss_fn=None, optimizer=None, scheduler=None,
        epochs=1, device='cpu', checkpoint_dir=None, resume=False, clip_grad_norm=None,
        progress=True, history_path=None, log_every=10, seed=None, config=None,
        nonfinite='raise'):
    """Train `model` for `epochs` epochs over `train_loader`; returns the history.

    loss_fn(output, target) -> scalar Tensor; default `F.cross_entropy`.
    optimizer: a tensorlite.optim optimizer over model.parameters(); default
        SGD(lr=0.01, momentum=0.9).
    scheduler: stepped once after each epoch (`scheduler.step()`), or None.
    clip_grad_norm: if a number, `clip_grad_norm_(model.parameters(), clip_grad_norm)` between
        backward and step.
    val_loader: evaluated with `evaluate` after every epoch (val_loss, val_accuracy = its top1).
    checkpoint_dir / resume: '<checkpoint_dir>/last.npz' after every epoch, and 'best.npz' after
        every epoch whose validation accuracy is the best so far; resume=True continues from
        last.npz if it exists (else starts fresh). See the module doc.
    history_path: write the history after every epoch to '<history_path without .csv/.json>.csv'
        and '.json' (atomically); default '<checkpoint_dir>/history' when checkpoint_dir is given.
    progress: True: tqdm bars showing the running loss, accuracy and clips/s, refreshed every
        `log_every` batches, and one summary line per epoch; 'epochs': the summary lines only (no
        bars: logs, CI); False prints nothing.
    seed: seeds tensorlite's, NumPy's and Python's generators at the start (see the module doc).
    config: extra JSON-able settings stored in the checkpoint beside the ones fit records.
    nonfinite: what a batch whose loss or gradients are not finite (NaN, inf) does.  'raise'
        (default): FloatingPointError at once, naming the epoch, the batch and the first input,
        parameter or gradient that is not finite, before any step with it and before any
        checkpoint: '<checkpoint_dir>/last.npz' stays the last finite one.  'skip': the batch
        takes no step and is counted in the history ('nonfinite_batches'), and an epoch whose
        every batch was skipped raises FloatingPointError.  Either way a model whose parameters
        are not finite at the end of an epoch is never saved: FloatingPointError.

    The history is a list with one dict per epoch: epoch (from 1), train_loss (mean over the
    clips), train_accuracy (top-1; None when the target is not (N,) class indices), val_loss and
    val_accuracy (None without val_loader), lr (the first parameter group's rate during the
    epoch), seconds (the whole epoch, validation included), clips_per_second (training only) and
    nonfinite_batches (batches skipped for a non-finite loss or gradient; 0 unless
    nonfinite='skip').
    A resumed run returns the history of all epochs, the ones before the interruption included.
    """
    from .. import functional as F
    from ..optim import SGD, clip_grad_norm_
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    if not isinstance(log_every, (int, np.integer)) or log_every < 1:
        raise ValueError(f"fit: log_every must be an int >= 1 (batches), got {log_every!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir, the folder holding 'last.npz'")
    if nonfinite not in NONFINITE:
        raise ValueError(f"fit: nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
    if not any(progress is p or (isinstance(progress, str) and progress == p) for p in PROGRESS):
        raise ValueError(f"fit: progress must be True, False or 'epochs', got {progress!r}")
    from .. import distributed
    from ..nn.parallel import DistributedDataParallel
    # data parallel when the model is wrapped in DistributedDataParallel: then the ranks train one
    # model together (printing and files on rank 0); otherwise each rank trains its own
    # (compare's cells under mpiexec) and fit behaves as in a single process
    parallel = isinstance(model, DistributedDataParallel) and distributed.get_world_size() > 1
    world = distributed.get_world_size() if parallel else 1
    main_rank = distributed.get_rank() == 0 or not parallel
    bars, lines = progress is True and main_rank, progress in (True, 'epochs') and main_rank
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"fit: clip_grad_norm must be a positive number or None, "
                         f"got {clip_grad_norm!r}")
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    if seed is not None:
        seed_everything(seed)
    model.to(device)
    if optimizer is None:
        optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)

    checkpoint_path = None
    if checkpoint_dir is not None:
        if main_rank:
            os.makedirs(checkpoint_dir, exist_ok=True)
        checkpoint_path = os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME)
        if history_path is None:
            history_path = os.path.join(os.fspath(checkpoint_dir), 'history')
    run_config = {'epochs': int(epochs), 'device': str(device), 'seed': seed,
                  'clip_grad_norm': clip_grad_norm, 'model': type(model).__name__,
                  'loss_fn': getattr(loss_fn, '__name__', type(loss_fn).__name__),
                  'optimizer': type(optimizer).__name__,
                  'scheduler': None if scheduler is None else type(scheduler).__name__,
                  'train_loader_seed': getattr(train_loader, 'seed', None), _EPOCH_COUNT: True,
                  'world_size': world}
    run_config.update(config or {})

    history, start_epoch = [], 0
    if resume and os.path.exists(checkpoint_path):
        info = load_checkpoint(checkpoint_path, model, optimizer, scheduler)
        if info['rng_state'] is not None:
            restore_rng_state(info['rng_state'])
        history = [dict(row) for row in ((info['extra'] or {}).get('history') or [])]
        start_epoch = 0 if info['epoch'] is None else info['epoch']
        if not (info['config'] or {}).get(_EPOCH_COUNT) and info['epoch'] is not None:
            start_epoch += 1                  # an older checkpoint: its epoch counted from 0
            for row in history:
                row['epoch'] = row['epoch'] + 1
        saved_world = (info['config'] or {}).get('world_size', 1)
        if saved_world != world:
            warnings.warn(f"fit: resuming from {checkpoint_path}, a run of {saved_world} "
                          f"process(es), with {world}: each process's share of the data differs, "
                          f"so the run will not repeat the uninterrupted one exactly")
        saved_seed = (info['config'] or {}).get('train_loader_seed')
        if saved_seed != run_config['train_loader_seed']:
            warnings.warn(f"fit: resuming from {checkpoint_path}, whose run used a training loader "
                          f"seeded {saved_seed}, with a loader seeded "
                          f"{run_config['train_loader_seed']}: the data order will differ from "
                          "the uninterrupted run's (give DataLoader an explicit seed)")
        if lines:
            _write(f"resumed from {checkpoint_path} after epoch {start_epoch}"
                   + (f": --epochs {epochs} is reached, nothing more to train"
                      if start_epoch >= epochs else ""))
    best_path = None if checkpoint_path is None else os.path.join(os.path.dirname(checkpoint_path),
                                                                  BEST_NAME)
    best = max((row['val_accuracy'] for row in history if row.get('val_accuracy') is not None),
               default=None)

    for epoch in range(start_epoch, epochs):          # the index, from 0; people read epoch + 1
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]['lr'])
        if hasattr(train_loader, 'set_epoch'):
            train_loader.set_epoch(epoch)
        model.train()
        total_loss, correct, counted, clips, skipped = 0.0, 0, 0, 0, 0
        bar = _progress_bar(train_loader, f"epoch {epoch + 1}/{epochs}", bars)
        try:
            for step, batch in enumerate(bar):
                inputs, target = unpack_batch(batch)
                inputs = tuple(_to_device(x, device) for x in inputs)
                target = _to_device(target, device)
                optimizer.zero_grad()
                buffers = _snapshot_buffers(model)      # running statistics, restored on a skip
                output = model(*inputs)
                loss = loss_fn(output, target)
                loss_value = float(loss.item())
                cause = None
                elsewhere = world > 1 and _nonfinite_elsewhere(loss_value)
                if not math.isfinite(loss_value):
                    cause = f"the loss is {loss_value}: " + _nonfinite_cause(model, inputs, target)
                elif elsewhere:
                    cause = "another rank's loss is not finite (its error names the cause)"
                else:
                    loss.backward()
                    cause = _nonfinite_gradient(model)
                if cause is not None:
                    _restore_buffers(buffers)         # the batch's forward leaves no trace
                    if nonfinite == 'raise':
                        raise FloatingPointError(
                            f"fit: epoch {epoch + 1}, batch {step + 1}: {cause}; no step "
                            f"was taken with it"
                            + (f", and {checkpoint_path} holds the last finite epoch"
                               if checkpoint_path is not None and os.path.exists(checkpoint_path)
                               else "")
                            + " (fit(..., nonfinite='skip') skips such batches)")
                    optimizer.zero_grad()
                    skipped += 1
                    continue
                if clip_grad_norm is not None:
                    clip_grad_norm_(model.parameters(), clip_grad_norm)
                optimizer.step()

                n = _batch_size(inputs, target)
                clips += n
                total_loss += loss_value * n
                labels = _labels_of(target)
                if labels is not None and isinstance(output, Tensor) and output.ndim == 2:
                    predicted = backend.as_numpy(output.data).argmax(axis=1)
                    correct += int((predicted == backend.as_numpy(labels)).sum())
                    counted += n
                if bars and (step + 1) % log_every == 0:
                    bar.set_postfix(_running(total_loss, correct, counted, clips, started))
        finally:
            if bars:
                bar.close()
        train_seconds = time.perf_counter() - started
        if world > 1:                              # the epoch's numbers over every rank's clips
            total_loss, correct, counted, clips, skipped = _sum_over_ranks(
                total_loss, correct, counted, clips, skipped)

        val_loss = val_accuracy = None
        if val_loader is not None:
            if hasattr(val_loader, 'set_epoch'):
                val_loader.set_epoch(0)
            result = evaluate(model, val_loader, loss_fn=loss_fn, device=device, topk=(1,))
            val_loss, val_accuracy = result['loss'], result['top1']
        if scheduler is not None:
            scheduler.step()

        seconds = time.perf_counter() - started
        history.append({'epoch': epoch + 1,
                        'train_loss': total_loss / clips if clips else None,
                        'train_accuracy': correct / counted if counted else None,
                        'val_loss': val_loss, 'val_accuracy': val_accuracy, 'lr': lr,
                        'seconds': seconds,
                        'clips_per_second': clips / train_seconds if train_seconds > 0 else None,
                        'nonfinite_batches': skipped})
        if lines:
            _write(_summary_line(history[-1], epochs))
        if skipped and not clips:
            raise FloatingPointError(
                f"fit: every one of the {skipped} batches of epoch {epoch + 1} had a "
                f"non-finite loss or gradient; the epoch was not saved"
                + (f" ({checkpoint_path} holds the last finite epoch)"
                   if checkpoint_path is not None and os.path.exists(checkpoint_path) else ""))
        broken = _nonfinite_parameter(model)
        if broken is not None:
            raise FloatingPointError(
                f"fit: after epoch {epoch + 1} {broken}; the model was not saved"
                + (f" ({checkpoint_path} holds the last finite epoch)"
                   if checkpoint_path is not None and os.path.exists(checkpoint_path) else ""))
        if checkpoint_path is not None and main_rank:
            state = dict(model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch + 1,
                         rng_state=capture_rng_state(), config=run_config,
                         extra={'history': history})
            save_checkpoint(checkpoint_path, **state)
            if val_accuracy is not None and (best is None or val_accuracy > best):
                best = val_accuracy
                save_checkpoint(best_path, **state)
        if history_path is not None and main_rank:
            write_history(history, history_path)
        if world > 1 and checkpoint_path is not None:
            distributed.barrier()            # the checkpoint is on disk before any rank goes on
    return history


def _nonfinite_elsewhere(loss_value):
    """Under data parallelism every rank must skip (or stop at) the same batches, or their
    collectives fall out of step: one all-reduce of a flag says whether any rank's loss is not
    finite."""
    from .. import distributed
    flag = Tensor(np.array([0.0 if math.isfinite(loss_value) else 1.0]))
    distributed.all_reduce(flag, op='max', check=False)
    return bool(flag.numpy()[0])


def _sum_over_ranks(*numbers):
    from .. import distributed
    totals = Tensor(np.array(numbers, np.float64))
    distributed.all_reduce(totals, check=False)
    values = totals.numpy().tolist()
    return values[0], int(values[1]), int(values[2]), int(values[3]), int(values[4])


def _count_nonfinite(array):
    """How many NaN and inf values a float array holds (0 for other dtypes)."""
    if array is None or getattr(array, 'dtype', None) is None or array.dtype.kind not in 'fc':
        return 0
    xp = backend.array_module(array)
    return int(array.size - int(xp.isfinite(array).sum()))


def _describe(count, array):
    return f"{count} of its {array.size} values are not finite (shape {tuple(array.shape)})"


def _nonfinite_cause(model, inputs, target):
    """Why a loss is not finite: the first input (or the target), parameter or buffer that holds
    NaN or inf, or that all of them are finite."""
    for k, x in enumerate(inputs):
        array = x.data if isinstance(x, Tensor) else None
        count = _count_nonfinite(array)
        if count:
            return f"input {k} of the batch is not finite: {_describe(count, array)}"
    array = target.data if isinstance(target, Tensor) else None
    count = _count_nonfinite(array)
    if count:
        return f"the target is not finite: {_describe(count, array)}"
    broken = _nonfinite_parameter(model)
    if broken is not None:
        return broken + (" (an earlier step made it so: are the learning rate and weight decay "
                         "finite and small enough?)")
    largest, where = 0.0, None
    for name, p in model.named_parameters():
        if p.data.size and p.data.dtype.kind == 'f':
            value = float(backend.array_module(p.data).abs(p.data).max())
            if value >= largest:
                largest, where = value, name
    return ("the inputs, target, parameters and buffers are all finite: the forward pass or the "
            "loss overflowed" + (f" (the largest parameter value is {largest:.3g}, in {where!r}: "
                                 f"is the learning rate small enough?)" if where else ""))


def _nonfinite_parameter(model):
    """'parameter 'name' is not finite: ...' for the first parameter or buffer holding NaN or
    inf, else None."""
    for kind, named in (('parameter', model.named_parameters()), ('buffer', model.named_buffers())):
        for name, tensor in named:
            array = tensor.data if isinstance(tensor, Tensor) else tensor
            count = _count_nonfinite(array)
            if count:
                return f"{kind} {name!r} is not finite: {_describe(count, array)}"
    return None


def _snapshot_buffers(model):
    """[(buffer, a copy of its array)] of the model's buffers (BatchNorm's running statistics
    and batch count: a forward in training mode updates them, even on a batch then skipped)."""
    return [(b, b.data.copy()) for _, b in model.named_buffers() if b is not None]


def _restore_buffers(snapshot):
    for buffer, array in snapshot:
        buffer.data[...] = array


def _nonfinite_gradient(model):
    """'the gradient of parameter 'name' is not finite: ...' for the first such gradient, else
    None."""
    for name, p in model.named_parameters():
        grad = None if p.grad is None else p.grad.data
        count = _count_nonfinite(grad)
        if count:
            return f"the gradient of parameter {name!r} is not finite: {_describe(count, grad)}"
    return None


def seed_everything(seed):
    """Seed tensorlite's generator, NumPy's global one and Python's `random` (what fit's `seed`
    does; `tensorlite train --seed` calls it before building the model and the data)."""
    tl_random.manual_seed(seed)
    np.random.seed(seed)
    _python_random.seed(seed)


def _progress_bar(iterable, description, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    total = len(iterable) if hasattr(iterable, '__len__') else None
    return tqdm(iterable, total=total, desc=description, unit='batch', leave=False,
                dynamic_ncols=True)


def _write(line):
    from tqdm.auto import tqdm
    tqdm.write(line)


def _running(total_loss, correct, counted, clips, started):
    """The bar's postfix: running mean loss, accuracy and throughput of the epoch so far."""
    elapsed = time.perf_counter() - started
    shown = {'loss': f"{total_loss / max(clips, 1):.4f}"}
    if counted:
        shown['acc'] = f"{correct / counted:.3f}"
    shown['clips/s'] = f"{clips / elapsed:.1f}" if elapsed > 0 else '-'
    return shown


def _summary_line(row, epochs):
    def fmt(value, spec):
        return '-' if value is None else format(value, spec)
    return (f"epoch {row['epoch']}/{epochs}  train loss {fmt(row['train_loss'], '.4f')} "
            f"acc {fmt(row['train_accuracy'], '.3f')}  val loss {fmt(row['val_loss'], '.4f')} "
            f"acc {fmt(row['val_accuracy'], '.3f')}  lr {row['lr']:.3g}  "
            f"{fmt(row['clips_per_second'], '.1f')} clips/s  {row['seconds']:.1f} s")


# ---- the history files --------------------------------------------------------------------------

def write_history(history, path):
    """Write `history` (fit's list of dicts) as '<stem>.csv' and '<stem>.json', each atomically,
    where <stem> is `path` without a '.csv' or '.json' extension. None is an empty CSV cell and
    JSON null; a non-finite float (a diverged loss) is written as the text nan/inf in the CSV and
    null in the JSON, which has no such numbers. Returns the two paths."""
    path = os.fspath(path)
    stem = path[:-len(os.path.splitext(path)[1])] if path.endswith(('.csv', '.json')) else path
    directory = os.path.dirname(os.path.abspath(stem))
    os.makedirs(directory, exist_ok=True)
    extra_fields = sorted({k for row in history for k in row} - set(HISTORY_FIELDS))
    fields = list(HISTORY_FIELDS) + extra_fields

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    for row in history:
        writer.writerow({k: ('' if row.get(k) is None else row[k]) for k in fields})
    csv_path, json_path = stem + '.csv', stem + '.json'
    _write_text(csv_path, text.getvalue())

    def finite(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    rows = [{k: finite(row.get(k)) for k in fields} for row in history]
    _write_text(json_path, json.dumps(rows, indent=1, allow_nan=False) + '\n')
    return csv_path, json_path


def _write_text(path, text):
    with atomic_write(path) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            f.write(text)


# ---- evaluation ---------------------------------------------------------------------------------

def _forward_views(model, inputs):
    """The model's scores for one batch: (N, C) logits, or for multi-view inputs the fused
    (N, C) probabilities and True.

    Multi-view: when the first input is 6-D, (N, K, C, T, H, W) (K views: temporal clips x
    spatial crops, as MultiClip + ToTensor give them), every input is taken to carry the same K
    views on axis 1; the model is run on view k of every input for k = 0..K-1, and the K views'
    softmax probabilities are averaged (`average_clip_scores`, MMAction2's 'prob')."""
    first = inputs[0]
    if not (isinstance(first, Tensor) and first.ndim == 6):
        return backend.as_numpy(model(*inputs).data), False
    views = int(first.shape[1])
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.ndim >= 2 and int(x.shape[1]) == views):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"multi-view evaluation: input 0 has {views} views on axis 1 "
                             f"(shape {tuple(first.shape)}), so every input must have them; "
                             f"input {i} has shape {shape}")
    per_view = [backend.as_numpy(model(*(x[:, k] for x in inputs)).data) for k in range(views)]
    return average_clip_scores(np.stack(per_view, axis=1), reduce='mean'), True   # (N, C)


def _predict(model, loader, loss_fn, device, progress, input_transform=None, description='eval'):
    """Run `model` in eval mode without gradients over `loader`: (scores (N, C), labels (N,),
    mean loss or None). `input_transform(inputs, first_index)` may rewrite each batch's inputs."""
    was_training = model.training
    model.eval()
    all_scores, all_labels, total_loss, clips = [], [], 0.0, 0
    bar = _progress_bar(loader, description, progress)
    try:
        with no_grad():
            for batch in bar:
                inputs, target = unpack_batch(batch)
                labels = _labels_of(target)
                if labels is None:
                    raise TypeError(f"evaluate needs class indices as targets, (N,) integers; "
                                    f"got {type(target).__name__} of shape "
                                    f"{getattr(target, 'shape', None)}")
                if input_transform is not None:
                    inputs = input_transform(inputs, clips)
                inputs = tuple(_to_device(x, device) for x in inputs)
                scores, fused = _forward_views(model, inputs)
                if scores.ndim != 2 or scores.shape[0] != len(labels):
                    raise ValueError(f"evaluate: the model returned scores of shape "
                                     f"{scores.shape}, expected ({len(labels)}, num_classes)")
                if loss_fn is not None:
                    # a fused prediction is a probability vector: its log is what cross-entropy
                    # (log_softmax, then NLL) turns back into the same log-probabilities
                    logits = scores
                    if fused:
                        logits = np.log(np.maximum(scores, np.finfo(scores.dtype).tiny))
                    loss = loss_fn(Tensor(backend.to_device(logits, device)),
                                   _to_device(target, device))
                    total_loss += float(loss.item()) * len(labels)
                all_scores.append(scores)
                all_labels.append(np.asarray(backend.as_numpy(labels)))
                clips += len(labels)
    finally:
        if progress:
            bar.close()
        model.train(was_training)
    if clips == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    sharded = _gather_shards(loader, scores, labels, total_loss, clips)
    if sharded is not None:
        scores, labels, total_loss, clips = sharded
    return scores, labels, total_loss / clips if loss_fn is not None else None


def _gather_shards(loader, scores, labels, total_loss, clips):
    """Under data parallelism, a loader whose sampler is a DistributedSampler saw only this rank's
    shard: gather every rank's scores and labels (all ranks get all of them), put them back in
    the dataset's order and drop the sampler's padding, so that the metrics are those of the
    whole dataset. None when the loader is not sharded. The loss sums every rank's clips,
    padding included (at most world size - 1 repeated clips)."""
    from .. import distributed
    sampler = getattr(loader, 'sampler', None)
    if (sampler is None or getattr(sampler, 'num_replicas', 1) <= 1
            or distributed.get_world_size() <= 1):
        return None
    from ..autograd.tensor import Tensor as _T
    world = distributed.get_world_size()
    indices = np.asarray(list(sampler), np.int64)
    if len(indices) != len(scores):
        raise ValueError(f"evaluate: the sampler gives {len(indices)} clips to this rank but the "
                         f"loader yielded {len(scores)}")
    parts = {}
    for name, array in (('scores', np.ascontiguousarray(scores, np.float64)),
                        ('labels', labels.astype(np.int64)), ('indices', indices)):
        gathered = [_T(np.zeros_like(array)) for _ in range(world)]
        distributed.all_gather(gathered, _T(array))
        parts[name] = np.concatenate([g.numpy() for g in gathered])
    totals = _T(np.array([total_loss, clips], np.float64))
    distributed.all_reduce(totals)
    order = np.unique(parts['indices'], return_index=True)[1]     # first copy of each index
    return (parts['scores'][order].astype(scores.dtype), parts['labels'][order],
            float(totals.numpy()[0]), int(totals.numpy()[1]))


def evaluate(model, loader, loss_fn=None, device='cpu', num_classes=None, topk=(1, 5),
             progress=False):
    """Evaluate a classifier over `loader` in eval mode without gradients (the model's train/eval
    mode is restored afterwards).

    Returns a dict:
      loss                 the mean of loss_fn (default `F.cross_entropy`) over the clips;
      top1, top5, ...      top-k accuracy for each k in `topk` with k <= num_classes (so 'top5'
                           only when there are at least 5 classes);
      mean_class_accuracy  the mean of per-class recalls over the classes present;
      confusion_matrix     (num_classes, num_classes) counts, rows true, columns predicted;
      num_samples          N.
    num_classes defaults to the number of scores the model outputs.

    Multi-view (multi-clip) evaluation: a batch whose first input is (N, K, C, T, H, W) is
    scored view by view and the K softmax probabilities are averaged (see `_forward_views`); the
    loss is then loss_fn(log(averaged probabilities), labels), for cross-entropy the negative
    log-likelihood of the fused prediction."""
    from .. import functional as F
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    scores, labels, loss = _predict(model, loader, loss_fn, device, progress)
    num_classes = scores.shape[1] if num_classes is None else int(num_classes)
    if num_classes != scores.shape[1]:
        raise ValueError(f"evaluate: num_classes={num_classes} but the model outputs "
                         f"{scores.shape[1]} scores per clip")
    ks = tuple(int(k) for k in ((topk,) if isinstance(topk, (int, np.integer)) else topk)
               if int(k) <= num_classes)
    result = {'loss': loss}
    if ks:
        result.update({f"top{k}": value for k, value in zip(ks, accuracy(scores, labels, topk=ks))})
    result['mean_class_accuracy'] = mean_class_accuracy(scores, labels, num_classes)
    result['confusion_matrix'] = confusion_matrix(scores, labels, num_classes)
    result['num_samples'] = int(len(labels))
    return result


# ---- the temporal diagnostic --------------------------------------------------------------------

def _frame_permutation(seed, clip_index, num_frames):
    """The fixed shuffle of clip `clip_index`'s frames: drawn from (seed, clip index, T) and
    redrawn while it is the identity (a 'shuffled' clip must differ from the original)."""
    rng = np.random.default_rng([int(seed), int(clip_index), int(num_frames)])
    order = rng.permutation(num_frames)
    while num_frames > 1 and np.array_equal(order, np.arange(num_frames)):
        order = rng.permutation(num_frames)
    return order


def _reorder_time(inputs, first_index, how, seed):
    """Reverse or shuffle the frames of every clip input: a 5-D (N, C, T, H, W) input on axis 2,
    a 6-D multi-view (N, K, C, T, H, W) input on axis 3. Other inputs (a two-stream model's
    (N, 2L, H, W) flow stack) are left as they are."""
    out = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.ndim in (5, 6)):
            out.append(x)
            continue
        data = backend.as_numpy(x.data)
        axis = x.ndim - 3                                     # T: third from the end
        if how == 'reversed':
            reordered = np.flip(data, axis=axis)
        else:
            num_frames = data.shape[axis]
            reordered = np.stack([np.take(data[i], _frame_permutation(seed, first_index + i,
                                                                      num_frames), axis=axis - 1)
                                  for i in range(data.shape[0])])
        out.append(Tensor(np.ascontiguousarray(reordered)))
    return tuple(out)


def temporal_diagnostic(model, loader, device='cpu', seed=0, progress=False, derive=None):
    """The lesson's check that a model uses time: its top-1 accuracy on the loader's clips as they
    are, with their frames in reverse order, and with their frames shuffled.

    Shuffling uses one fixed permutation per clip, drawn from (seed, the clip's position in the
    loader's order, T) and never the identity, so repeated calls (and every model) see the same
    shuffled clips. A model whose accuracy does not drop on reversed or shuffled frames is not
    using the order of frames (on the 'order' family it must drop to near chance; on 'scene' it
    should not drop). Only 5-D clip inputs (N, C, T, H, W) and 6-D multi-view ones are reordered;
    precomputed flow stacks are not (a two-stream model's temporal stream would need its flow
    recomputed from the reordered frames: pass `derive`).

    derive(inputs) -> inputs: called on every batch's inputs after its frames were reordered (and
    not on the original pass), to recompute what is derived from the frames -- e.g. a two-stream
    model's flow stack from the reordered clip (tensorlite.compare does this).

    Returns {'accuracy', 'reversed_accuracy', 'shuffled_accuracy', 'chance' (1 / num_classes),
    'num_samples'}. The loader must give the same clips in the same order on each pass (no
    shuffle, or a DataLoader, which is set to epoch 0 before each pass)."""
    result = {}
    for name, how in (('accuracy', None), ('reversed_accuracy', 'reversed'),
                      ('shuffled_accuracy', 'shuffled')):
        if hasattr(loader, 'set_epoch'):
            loader.set_epoch(0)
        transform = None
        if how is not None:
            def transform(inputs, first, how=how):
                inputs = _reorder_time(inputs, first, how, seed)
                return inputs if derive is None else tuple(derive(inputs))
        scores, labels, _ = _predict(model, loader, None, device, progress, transform,
                                     description=how or 'original')
        result[name] = accuracy(scores, labels, topk=1)
    result['chance'] = 1.0 / scores.shape[1]
    result['num_samples'] = int(len(labels))
    return result
