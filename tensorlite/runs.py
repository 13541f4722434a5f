"""Runs of `tensorlite train`: find a run's checkpoint, rebuild its model, and run it on videos.

    from tensorlite.runs import load_run, predict
    model, config = load_run('runs/c3d/20261206-101500')       # the folder or a .npz in it
    for item in predict('runs/c3d/20261206-101500', ['clip.mp4'], topk=3):
        print(item['video'], item['predictions'][0])    # {'label': 'order', 'probability': 0.97}

A run folder holds `best.npz` (the epoch of the best validation accuracy) and `last.npz` (the last
epoch); a run is read from its best checkpoint when it has one. A checkpoint's
`config['model_config']` describes the run: the model (name, preset, number of classes, the
build arguments that fix its clip), its classes, and the clip it takes (frames, size). Videos
are read the way the run's validation clips were: `frames` frames evenly spread over the whole
video (UniformStride; with `views` > 1, that many clips evenly spaced, MultiClip, whose scores are
averaged), the short side resized to `size`, the centre crop, values in [0, 1]; a two-stream
model also gets the optical-flow stack of the clip's centre frames.
"""
import os

import numpy as np

__all__ = ['resolve_checkpoint', 'load_run', 'build_from_config', 'model_overrides',
           'folder_transform', 'clip_sampler', 'read_frames', 'load_clip', 'predict', 'CHECKPOINT_NAMES']

#: the checkpoints a run folder may hold, in the order a run is read from
CHECKPOINT_NAMES = ('best.npz', 'last.npz')


def resolve_checkpoint(path):
    """A run folder -> its best.npz, else its last.npz; a file -> itself. FileNotFoundError
    naming what was looked for otherwise."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in CHECKPOINT_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{path!r} is a folder without {' or '.join(CHECKPOINT_NAMES)}: "
                                f"not the --out folder of a `tensorlite train` run")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r}: no such run folder or checkpoint file (expected the "
                                f"--out folder of `tensorlite train`, or a .npz in it)")
    return path


def model_overrides(name, frames, size):
    """The build_model keyword arguments that set a model's clip length and frame size, for the
    models that fix them (tensorlite.models.clip_overrides: an MLP over a flattened map, position
    embeddings, stacked frames; C3D below 16 frames also clamps its time pools). I3D and SlowFast
    take any T and H, W (adaptive pooling), so they get none; so does a model registered by a
    user, which is built as it comes."""
    from .models import clip_overrides
    return clip_overrides(name, frames, size)


def build_from_config(config):
    """The model a `tensorlite train` run describes (its checkpoint's 'model_config'), with fresh
    weights; ValueError naming the model and its clip when it cannot be built."""
    from .models import build_model
    try:
        return build_model(config['name'], config['num_classes'], preset=config['preset'],
                           **config.get('overrides', {}))
    except (ValueError, TypeError) as e:
        raise ValueError(f"cannot build model {config['name']!r} (preset {config['preset']!r}, "
                         f"{config['frames']} frames of {config['size']}x{config['size']}): "
                         f"{e}") from None


def load_run(path):
    """(model with the run's weights, in eval mode, its model_config) from a run folder (best.npz,
    else last.npz) or a checkpoint file of `tensorlite train`.

    Raises FileNotFoundError (no such run), tensorlite.train.CheckpointError (a damaged file) and
    ValueError (a checkpoint not written by `tensorlite train`, or weights that do not fit)."""
    from .train import load_checkpoint
    path = resolve_checkpoint(path)
    info = load_checkpoint(path)
    config = (info['config'] or {}).get('model_config')
    if not isinstance(config, dict) or info['model'] is None:
        raise ValueError(f"{path!r} holds no model_config: it was not written by `tensorlite "
                         f"train`, so the model cannot be rebuilt")
    model = build_from_config(config)
    try:
        model.load_state_dict(info['model'])
    except Exception as e:
        raise ValueError(f"{path!r}: its weights do not fit the model its config describes: "
                         f"{e}") from None
    model.eval()
    return model, config


class StackViews:
    """ToTensor's list of K (C, T, H, W) views -> one (K, C, T, H, W) array, the multi-view layout
    `evaluate` and `temporal_diagnostic` average over."""

    def __call__(self, clips, rng=None):
        return np.stack(list(clips))

    def __repr__(self):
        return 'StackViews()'


def folder_transform(size, training, views=1):
    """Frames (T, H, W, 3) uint8 -> (C, T, size, size) float32 in [0, 1]: short side to `size`,
    centre crop (a random horizontal flip in training); K views are stacked (K, C, T, H, W)."""
    from . import data as D
    steps = [D.Resize(size), D.CenterCrop(size)]
    if training:
        steps.append(D.RandomHorizontalFlip())
    steps.append(D.ToTensor())
    if views > 1:
        steps.append(StackViews())
    return D.Compose(steps)


def clip_sampler(frames, training=False, views=1):
    """The temporal sampler of a run's clips of `frames` frames: a random window in training
    (RandomTemporalCrop), `views` evenly spaced windows for several views (MultiClip), else the
    frames evenly spread over the whole video (UniformStride)."""
    from . import data as D
    if views > 1:
        return D.MultiClip(views, frames)
    if training:
        return D.RandomTemporalCrop(frames, training=True)
    return D.UniformStride(frames)


def read_frames(path, chosen):
    """The uint8 frames a sampler chose from a video: one (T, H, W, 3) array for one index array,
    a list of them for a list of index arrays (several views: their union decoded once)."""
    from .data import read_video
    if isinstance(chosen, (list, tuple)):
        union = np.unique(np.concatenate(chosen))
        frames, _ = read_video(path, frames=union)
        return [frames[np.searchsorted(union, c)] for c in chosen]
    return read_video(path, frames=chosen)[0]


def load_clip(path, config, views=1):
    """A video file, GIF or frame folder -> the run's model inputs for it, without the batch axis:
    (clip,) with clip (C, T, size, size) float32 for one view, (views, C, T, size, size) for
    several; a two-stream run also gets its flow stack (2L, size, size) (one view only)."""
    from .data import video_info
    from .data.twostream import centred_flow_stack
    flow_length = config.get('flow_length')
    if flow_length and views > 1:
        raise ValueError("views > 1 is not supported for two-stream models (their flow stack is "
                         "computed from one clip)")
    info = video_info(path)
    chosen = clip_sampler(config['frames'], False, views)(info.num_frames)
    clip = folder_transform(config['size'], False, views)(read_frames(path, chosen))
    if flow_length:
        return clip, centred_flow_stack(clip, flow_length)
    return (clip,)


def predict(run, videos, topk=5, views=1, device='cpu'):
    """The run's top-k classes for each video, best first.

    run: a run folder or checkpoint path, or a (model, model_config) pair from `load_run`.
    videos: paths (video files, GIFs, frame folders); topk: how many classes (at most all of
    them); views: clips per video whose probabilities are averaged.
    Returns [{'video': path, 'predictions': [{'label': class name, 'probability': p}, ...]}, ...]
    with p the softmax probability (averaged over the views)."""
    from . import functional as F
    from .autograd import no_grad
    from .autograd.tensor import Tensor
    from . import backend
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"predict: topk must be an int >= 1, got {topk!r}")
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
        raise ValueError(f"predict: views must be an int >= 1, got {views!r}")
    model, config = load_run(run) if isinstance(run, (str, os.PathLike)) else run
    if isinstance(videos, (str, os.PathLike)):
        videos = [videos]
    classes = list(config['classes'])
    topk = min(int(topk), len(classes))
    model.to(device)
    model.eval()
    results = []
    with no_grad():
        for video in videos:
            inputs = load_clip(video, config, views)
            if views > 1:                      # the views as a batch
                batch = [Tensor(np.ascontiguousarray(inputs[0]))]
            else:
                batch = [Tensor(np.ascontiguousarray(x[None])) for x in inputs]
            logits = model(*[x.to(device) for x in batch])
            probabilities = backend.as_numpy(F.softmax(logits, dim=-1).data).mean(axis=0)
            order = np.argsort(-probabilities, kind='stable')[:topk]
            results.append({'video': os.fspath(video),
                            'predictions': [{'label': str(classes[k]),
                                             'probability': float(probabilities[k])}
                                            for k in order]})
    return results
