"""Reading videos the way a run's validation clips were read, and a run's predictions.

    from tensorlite.train import predict
    for item in predict('runs/c3d/20261206-101500', ['clip.mp4'], topk=3):
        print(item['video'], item['predictions'][0])    # {'label': 'order', 'probability': 0.97}

Videos are read the way a run's validation clips were: `frames` frames evenly spread over the
whole video (UniformStride; with `views` > 1, that many clips evenly spaced, MultiClip, whose
scores are averaged), the short side resized to `size`, the centre crop, values in [0, 1]; a
two-stream model also gets the optical-flow stack of the clip's centre frames.
"""
import os

import numpy as np

__all__ = ['StackViews', 'folder_transform', 'clip_sampler', 'read_frames', 'load_clip', 'predict']


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
    from .. import data as D
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
    from .. import data as D
    if views > 1:
        return D.MultiClip(views, frames)
    if training:
        return D.RandomTemporalCrop(frames, training=True)
    return D.UniformStride(frames)


def read_frames(path, chosen):
    """The uint8 frames a sampler chose from a video: one (T, H, W, 3) array for one index array,
    a list of them for a list of index arrays (several views: their union decoded once)."""
    from ..data import read_video
    if isinstance(chosen, (list, tuple)):
        union = np.unique(np.concatenate(chosen))
        frames, _ = read_video(path, frames=union)
        return [frames[np.searchsorted(union, c)] for c in chosen]
    return read_video(path, frames=chosen)[0]


def load_clip(path, config, views=1):
    """A video file, GIF or frame folder -> the run's model inputs for it, without the batch axis:
    (clip,) with clip (C, T, size, size) float32 for one view, (views, C, T, size, size) for
    several; a two-stream run also gets its flow stack (2L, size, size) (one view only)."""
    from ..data import video_info
    from ..data.twostream import centred_flow_stack
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
    from .. import backend
    from .. import functional as F
    from ..autograd import no_grad
    from ..autograd.tensor import Tensor
    from .run import load_run
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
