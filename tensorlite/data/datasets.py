"""File-based video datasets: the class-per-folder layout of UCF101/HMDB51/Kinetics dumps
(`VideoFolder`) and annotation files listing videos, labels, segments and captions (`VideoList`).

Both load a sample the same way, so that only the frames a model sees are decoded:

    info = video_info(path)                 # frame count from a demux pass, nothing decoded
    idx  = sampler(num_frames)              # which frames (relative to the segment, if trimmed)
    clip = read_video(path, frames=idx)     # decodes up to max(idx) only; (T, H, W, 3) uint8
    clip = transform(clip)                  # e.g. crop, flip, ToTensor -> (C, T, H, W) float32

A sampler may return one index array (one clip) or a list/tuple of index arrays (`MultiClip`'s
evaluation clips, `TwoRate`'s (slow, fast) pair): the union of their frames is decoded once and the
sample's clip is then a list/tuple of clips, given to the transform together so that a random crop
is drawn once for all of them.

Unreadable files. Without `skip_bad` the error propagates, naming the file. With `skip_bad=True`
`dataset[i]` on an unreadable video returns the next readable sample of the same class instead
(the class's next index after i, wrapping around; for rows without a label, the next readable
row), so `len(dataset)` and every index a loader asks for stay valid, the class balance holds and
the result is deterministic. A class whose videos are all unreadable raises VideoReadError naming
it. The file is recorded in `bad_files` (its count in `num_bad`) and reported by one warning the
first time it is met, never again. Under a DataLoader with workers, the workers send what they
find to the main process, which keeps the record and gives the warnings (each file once, however
many workers meet it). `check_files()` probes every file up front (no decoding) and reports all bad
ones in a single warning. `subset(indices)` is the same dataset restricted to those items (a
train/validation split), whose substitutes stay inside it.
"""
import copy
import csv
import itertools
import json
import math
import os
import warnings
import weakref

import numpy as np

from .io import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoReadError, _decode, _probe,
                 is_frame_folder)

__all__ = ['VideoFolder', 'VideoList']

#: files a VideoFolder picks up by default: the container formats and GIF
DEFAULT_EXTENSIONS = VIDEO_EXTENSIONS + ('.gif',)

# What counts as an unreadable video for skip_bad: decoding failures and missing/unopenable
# files. Errors from a sampler or a transform are bugs in the pipeline and are never skipped.
_UNREADABLE = (VideoReadError, OSError)

# skip_bad under DataLoader workers: a worker does not warn; it queues (token, index, path,
# message) here, the loader sends the queue with each batch, and the main process merges it into
# the dataset of that token. Tokens name datasets across processes (a forked or pickled copy
# keeps its original's token).
_DATASETS = weakref.WeakValueDictionary()          # token -> dataset made in this process
_TOKENS = itertools.count()
_worker_reports = []


def take_worker_reports():
    """The unreadable files this worker met since the last call (the loader sends them)."""
    reports = list(_worker_reports)
    _worker_reports.clear()
    return reports


def merge_worker_reports(reports):
    """Record a worker's unreadable files in the main process's datasets, warning once per file."""
    for token, index, path, message in reports:
        dataset = _DATASETS.get(token)
        if dataset is not None:
            dataset._record_bad(index, path, message, warn=True)


def _in_worker():
    from .loader import get_worker_info
    return get_worker_info() is not None


class _VideoDataset:
    """Shared loading: segment -> sampler -> partial decode -> transform, with skip_bad.

    Subclasses set `self.samples` (one entry per item) and define `_item(i)` returning
    (path, start_seconds or None, end_seconds or None, target)."""

    def __init__(self, sampler, transform, skip_bad, fps):
        self.sampler = sampler
        self.transform = transform
        self.skip_bad = skip_bad
        self.fps = fps
        self.bad_files = []              # paths found unreadable, in the order they were met
        self._bad_indices = set()
        self._register()

    def _register(self):
        self._token = (os.getpid(), next(_TOKENS))
        _DATASETS[self._token] = self

    def subset(self, indices):
        """This dataset restricted to items `indices` (in that order), e.g. a train/validation
        split: item k is item indices[k] here. Its unreadable-file record starts empty, and
        skip_bad's substitutes come from the subset only (a training video is never replaced by a
        validation one)."""
        indices = [range(len(self))[int(i)] for i in indices]
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in indices]
        part.targets = [self.targets[i] for i in indices]
        if hasattr(self, 'annotations'):
            part.annotations = [self.annotations[i] for i in indices]
        part.bad_files, part._bad_indices = [], set()
        part.__dict__.pop('_groups', None)
        part._register()
        return part

    def __len__(self):
        return len(self.samples)

    @property
    def num_bad(self):
        """How many unreadable files were met so far (in this process)."""
        return len(self.bad_files)

    def __getitem__(self, index):
        index = range(len(self))[index]          # negative indices; IndexError past the end
        if not self.skip_bad:
            return self._load(index)
        group = self._group_of(index)
        start = group.index(index)
        for step in range(len(group)):
            j = group[(start + step) % len(group)]
            if j in self._bad_indices:
                continue
            try:
                return self._load(j)
            except _UNREADABLE as err:
                self._mark_bad(j, err)
        raise VideoReadError(f"{type(self).__name__}: all {len(group)} videos of "
                             f"{self._label_name(self.targets[index])} are unreadable: nothing can "
                             f"stand in for item {index} ({self.num_bad} bad files, e.g. "
                             f"{self.bad_files[:3]})")

    def _label_name(self, label):
        classes = getattr(self, 'classes', None) or []
        if label is None:
            return 'the rows without a label'
        if label in range(len(classes)) and isinstance(classes[label], str):
            return f"class {classes[label]!r}"
        return f"label {label!r}"

    def _group_of(self, index):
        """The indices of the items with index's label (all unlabelled rows form one group),
        in order: where skip_bad looks for a substitute."""
        if '_groups' not in self.__dict__:
            groups = {}
            for i, label in enumerate(self.targets):
                groups.setdefault(label, []).append(i)
            self._groups = groups
        return self._groups[self.targets[index]]

    def _mark_bad(self, index, err):
        path = self._item(index)[0]
        if _in_worker():                 # the main process keeps the record and warns
            _worker_reports.append((self._token, index, path, str(err)))
            self._record_bad(index, path, str(err), warn=False)
        else:
            self._record_bad(index, path, str(err), warn=True)

    def _record_bad(self, index, path, message, warn):
        self._bad_indices.add(index)
        if path not in self.bad_files:
            self.bad_files.append(path)
            if warn:
                warnings.warn(f"{type(self).__name__}: skipping unreadable video {path!r} "
                              f"({message}); {self.num_bad} unreadable so far, see .bad_files",
                              stacklevel=4)

    def check_files(self):
        """Probe every video (headers and frame counts, no decoding) and record the unreadable ones.

        Returns the list of bad paths found by this call, reported together in one warning. A file
        whose header is sound but whose data is corrupt further in is only found when decoded."""
        found = []
        for i in range(len(self)):
            if i in self._bad_indices:
                continue
            path = self._item(i)[0]
            try:
                _probe(path, self.fps)
            except _UNREADABLE as err:
                self._bad_indices.add(i)
                if path not in self.bad_files:
                    self.bad_files.append(path)
                    found.append((path, err))
        if found:
            listing = '; '.join(f"{p!r}: {e}" for p, e in found)
            warnings.warn(f"{type(self).__name__}: {len(found)} unreadable videos: {listing}",
                          stacklevel=2)
        return [p for p, _ in found]

    def _load(self, index):
        path, start, end, target = self._item(index)
        info, reader = _probe(path, self.fps)
        first, stop = _segment_frames(info, start, end)
        count = stop - first
        if self.sampler is None:
            clip = _decode(info, reader, np.arange(first, stop))
        else:
            chosen = self.sampler(count)
            several = _is_clip_list(chosen)
            clips = [self._shift(c, first, count, path) for c in (chosen if several else [chosen])]
            if several:
                union = np.unique(np.concatenate(clips))
                frames = _decode(info, reader, union)       # each frame decoded once
                # position of each wanted index inside the decoded union
                clip = type(chosen)(frames[np.searchsorted(union, c)] for c in clips)
            else:
                clip = _decode(info, reader, clips[0])
        if self.transform is not None:
            clip = self.transform(clip)
        return clip, target


    def _shift(self, indices, first, count, path):
        """Sampler indices (relative to the segment) -> absolute frame indices; IndexError naming
        the sampler and the file when the sampler broke its contract."""
        indices = np.asarray(indices)
        if indices.dtype.kind not in 'iu':
            raise TypeError(f"sampler {self.sampler!r} returned {indices.dtype} indices for {path!r}; "
                            f"expected integers")
        indices = indices.astype(np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= count):
            raise IndexError(f"sampler {self.sampler!r} returned indices {indices.min()}..{indices.max()} "
                             f"outside 0..{count - 1} for {path!r} ({count} frames)")
        return indices + first


def _is_clip_list(chosen):
    """True for a list/tuple of index arrays (several clips), False for one index array."""
    return isinstance(chosen, (list, tuple)) and len(chosen) > 0 and np.ndim(chosen[0]) == 1


def _segment_frames(info, start, end):
    """Frame range [first, stop) of the segment [start, end) seconds: the frames whose
    presentation time k / fps falls inside it. None means the video's start or end."""
    first = 0 if start is None else int(math.ceil(start * info.fps - 1e-6))
    stop = info.num_frames if end is None else min(info.num_frames,
                                                    int(math.ceil(end * info.fps - 1e-6)))
    first = max(first, 0)
    if stop <= first:
        raise VideoReadError(f"segment [{start}, {end}) s of {info.path!r} holds no frames: the video "
                             f"has {info.num_frames} frames at {info.fps:g} fps "
                             f"({info.duration:.2f} s)")
    return first, stop


class VideoFolder(_VideoDataset):
    """Videos laid out one folder per class, as UCF101, HMDB51 and Kinetics dumps are:

        root/class_a/video_1.mp4
        root/class_a/video_2/000001.jpg ...     (a video may be a folder of frames)
        root/class_b/clip.avi

    Classes are the sorted names of root's subfolders and labels their positions, as torchvision's
    `DatasetFolder`: `classes`, `class_to_idx`. `samples` is the list of (path, label), sorted by
    class, then by name within a class; `targets` the labels alone. Only the first level inside a
    class folder is scanned: a file with one of `extensions` (case-insensitive) is a video, a
    subfolder holding JPEG/PNG files is a frame-folder video.

    `dataset[i]` -> (clip, label): clip is the uint8 frames (T, H, W, 3) picked by `sampler`
    (all frames without one) after `transform` (if any). See the module docstring for multi-clip
    samplers and `skip_bad`. `fps` is the frame rate assumed for frame folders.
    """

    def __init__(self, root, sampler=None, transform=None, extensions=DEFAULT_EXTENSIONS,
                 skip_bad=False, fps=None):
        super().__init__(sampler, transform, skip_bad, fps)
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"VideoFolder root {self.root!r} is not a directory")
        self.extensions = tuple(e.lower() for e in ((extensions,) if isinstance(extensions, str)
                                                    else extensions))
        self.classes = sorted(e.name for e in os.scandir(self.root)
                              if e.is_dir() and not e.name.startswith('.'))
        if not self.classes:
            raise FileNotFoundError(f"VideoFolder found no class folders in {self.root!r} "
                                    f"(expected root/<class>/<video>)")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = []
        for c in self.classes:
            folder = os.path.join(self.root, c)
            videos = [os.path.join(folder, e.name) for e in sorted(os.scandir(folder), key=lambda e: e.name)
                      if not e.name.startswith('.') and self._is_video(e)]
            if not videos:
                raise FileNotFoundError(
                    f"VideoFolder: class folder {folder!r} holds no videos (files ending in "
                    f"{', '.join(self.extensions)}, or folders of {'/'.join(IMAGE_EXTENSIONS)} frames)")
            self.samples += [(v, self.class_to_idx[c]) for v in videos]
        self.targets = [label for _, label in self.samples]

    def _is_video(self, entry):
        if entry.is_dir():
            return is_frame_folder(entry.path)
        return entry.name.lower().endswith(self.extensions)

    def _item(self, index):
        path, label = self.samples[index]
        return path, None, None, label

    def __repr__(self):
        return (f"VideoFolder(root={self.root!r}, {len(self)} videos, {len(self.classes)} classes, "
                f"sampler={self.sampler!r}, transform={self.transform!r}, skip_bad={self.skip_bad})")


class VideoList(_VideoDataset):
    """Videos listed in an annotation file, optionally trimmed to segments and captioned.

    CSV (a header row names the columns) or JSON (a list of objects with the same keys):

        path,label,start,end,caption
        videos/a.mp4,jump,1.5,4.0,a person jumps over a bar
        videos/b_frames/,run,,,

    path (required): relative to `root` (default: the annotation file's folder) unless absolute;
        a video file or a frame folder.
    label: an integer or a class name. With names, `classes` is their sorted list and labels their
        positions (`class_to_idx`), as for VideoFolder; with integers, labels are used as given.
    start, end (optional, seconds): only the frames shown in [start, end) are used; the sampler
        sees that segment's frame count and its indices are relative to the segment. Empty = the
        video's start / end.
    caption (optional): a sentence describing the clip.

    `target` selects what `dataset[i]` returns with the clip: 'label' -> (clip, label),
    'caption' -> (clip, caption), 'both' -> (clip, (label, caption)).
    `annotations` keeps the parsed rows (dicts with path, label, start, end, caption); `samples` is
    the list of (path, label). See the module docstring for samplers, transforms and `skip_bad`.
    """

    TARGETS = ('label', 'caption', 'both')

    def __init__(self, annotation_file, root=None, sampler=None, transform=None, skip_bad=False,
                 target='label', fps=None):
        super().__init__(sampler, transform, skip_bad, fps)
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        self.target = target
        self.annotation_file = os.fspath(annotation_file)
        self.root = os.fspath(root) if root is not None else os.path.dirname(
            os.path.abspath(self.annotation_file))
        rows = _read_annotations(self.annotation_file)
        self.annotations = [self._parse_row(row, n) for n, row in enumerate(rows, 1)]
        self._index_labels()
        self.samples = [(a['path'], a['label']) for a in self.annotations]
        self.targets = [a['label'] for a in self.annotations]

    def _parse_row(self, row, number):
        where = f"{self.annotation_file!r}, row {number}"
        path = row.get('path')
        if path in (None, ''):
            raise ValueError(f"{where}: missing 'path' (got keys {sorted(row)})")
        out = {'path': os.path.join(self.root, str(path))}   # join keeps an absolute path as is
        for key in ('start', 'end'):
            value = row.get(key)
            try:
                out[key] = None if value in (None, '') else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: {key} must be a number of seconds, got {value!r}") from None
        if out['start'] is not None and out['end'] is not None and out['end'] <= out['start']:
            raise ValueError(f"{where}: end {out['end']} must be after start {out['start']}")
        label, caption = row.get('label'), row.get('caption')
        out['label'] = None if label in (None, '') else label
        out['caption'] = None if caption in (None, '') else str(caption)
        if self.target in ('label', 'both') and out['label'] is None:
            raise ValueError(f"{where}: target={self.target!r} needs a label, the row has none")
        if self.target in ('caption', 'both') and out['caption'] is None:
            raise ValueError(f"{where}: target={self.target!r} needs a caption, the row has none")
        return out

    def _index_labels(self):
        """Integer labels stay as given; class names become indices into sorted `classes`."""
        labels = [a['label'] for a in self.annotations if a['label'] is not None]
        as_ints = [_as_int(v) for v in labels]
        if all(v is not None for v in as_ints):
            for a in self.annotations:
                a['label'] = _as_int(a['label']) if a['label'] is not None else None
            self.classes = sorted(set(as_ints))
            self.class_to_idx = {c: c for c in self.classes}
        else:
            self.classes = sorted(set(str(v) for v in labels))
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            for a in self.annotations:
                a['label'] = self.class_to_idx[str(a['label'])] if a['label'] is not None else None

    def _item(self, index):
        a = self.annotations[index]
        target = {'label': a['label'], 'caption': a['caption'],
                  'both': (a['label'], a['caption'])}[self.target]
        return a['path'], a['start'], a['end'], target

    def __repr__(self):
        return (f"VideoList({self.annotation_file!r}, {len(self)} videos, target={self.target!r}, "
                f"sampler={self.sampler!r}, transform={self.transform!r}, skip_bad={self.skip_bad})")


def _as_int(value):
    """int(value) for integers and integer strings ('3', ' 3 '), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():
        return int(value.strip())
    return None


def _read_annotations(path):
    """Rows of a CSV (with a header) or JSON (a list of objects) annotation file, as dicts."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path!r}")
    with open(path, newline='', encoding='utf-8') as f:
        text = f.read()
    if path.lower().endswith('.json') or text.lstrip().startswith('['):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"annotation file {path!r} is not valid JSON: {e}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"annotation file {path!r}: expected a JSON list of objects with keys "
                             f"path, label[, start, end][, caption]")
        return rows
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or 'path' not in [h.strip() for h in reader.fieldnames]:
        raise ValueError(f"annotation file {path!r}: expected a CSV header row with columns "
                         f"path,label[,start,end][,caption], got {reader.fieldnames}")
    return [{(k or '').strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
            for row in reader]
