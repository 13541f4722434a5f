"""Temporal action localization: from per-frame class scores to (start, end, label, score)
segments, temporal non-maximum suppression, and mean average precision at several temporal-IoU
thresholds, computed as ActivityNet's official evaluation computes it.

Segments are half-open intervals [start, end): a segment built from frames s, s+1, ..., e-1 is
(s, e), its length is e - s, and two segments that only touch (one ends where the other starts)
overlap by zero. Times may be frame indices or seconds; nothing here depends on the unit as long as
predictions and ground truth use the same one.

    segments = segments_from_scores(frame_probs, threshold=0.5, ignore_index=0)   # 0 = background
    segments = temporal_nms(segments, iou_threshold=0.5)
    predictions = [(video_id, s, e, label, score) for s, e, label, score in segments]
    result = mean_average_precision(predictions, ground_truth)   # result['mAP'][0.5], ...
"""
from collections import defaultdict

import numpy as np

from .metrics import _as_numpy

__all__ = ['temporal_iou', 'segments_from_scores', 'temporal_nms', 'interpolated_average_precision',
           'average_precision', 'mean_average_precision']


def temporal_iou(segment, segments):
    """Temporal intersection over union of one segment with each of M segments.

    segment: (start, end). segments: (M, 2) array-like of (start, end), or one (start, end).
    Returns a float64 array of shape (M,), or a float when `segments` is a single segment.
    IoU = |intersection| / |union| with |[s, e)| = e - s; two empty segments have IoU 0.
    """
    segment = np.asarray(segment, dtype=np.float64)
    if segment.shape != (2,):
        raise ValueError(f'segment: expected (start, end), got shape {segment.shape}')
    others = np.asarray(segments, dtype=np.float64)
    single = others.ndim == 1
    others = others.reshape(-1, 2) if single and others.shape == (2,) else others
    if others.ndim != 2 or others.shape[1] != 2:
        raise ValueError(f'segments: expected shape (M, 2) of (start, end), got {np.shape(segments)}')
    if segment[1] < segment[0] or np.any(others[:, 1] < others[:, 0]):
        raise ValueError('segments must have end >= start')
    intersection = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]),
                           0.0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)
    return float(iou[0]) if single else iou


def segments_from_scores(frame_scores, threshold, min_length=1, ignore_index=None):
    """Group, for each class, the runs of consecutive frames whose score exceeds `threshold` into
    segments.

    frame_scores: (T, C) per-frame class scores (e.g. softmax probabilities), or (T,) for a single
        class (label 0). A frame belongs to a run of class c when frame_scores[t, c] > threshold
        (strictly).
    min_length: runs shorter than this many frames are dropped (isolated flickers).
    ignore_index: a class to skip, typically the background class.

    Returns a list of (start, end, label, score) with integer frame indices, end exclusive: the
    run of frames s..e-1 gives (s, e). score is the mean of the class's scores over the run's frames.
    The list is ordered by start, then label. One frame can belong to segments of several classes.
    """
    scores = _as_numpy(frame_scores, 'frame_scores')
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2:
        raise ValueError(f'frame_scores: expected shape (T, C) or (T,), got {scores.shape}')
    if min_length < 1:
        raise ValueError(f'min_length: expected at least 1 frame, got {min_length}')
    scores = scores.astype(np.float64)
    num_frames, num_classes = scores.shape
    # prefix sums give the mean over any run [s, e) in O(1): (cum[e] - cum[s]) / (e - s)
    cumulative = np.concatenate([np.zeros((1, num_classes)), np.cumsum(scores, axis=0)], axis=0)
    above = scores > threshold
    # a 0 on both sides makes every run open with a +1 step and close with a -1 step
    padded = np.zeros((num_frames + 2, num_classes), dtype=np.int8)
    padded[1:-1] = above
    steps = np.diff(padded, axis=0)                     # (T + 1, C)
    segments = []
    for label in range(num_classes):
        if label == ignore_index:
            continue
        starts = np.flatnonzero(steps[:, label] == 1)
        ends = np.flatnonzero(steps[:, label] == -1)    # the first frame after the run: exclusive
        for start, end in zip(starts, ends):
            if end - start < min_length:
                continue
            mean = (cumulative[end, label] - cumulative[start, label]) / (end - start)
            segments.append((int(start), int(end), label, float(mean)))
    segments.sort(key=lambda seg: (seg[0], seg[2]))
    return segments


def temporal_nms(segments, iou_threshold):
    """Greedy temporal non-maximum suppression, class by class.

    segments: a list of (start, end, label, score), or of (video_id, start, end, label, score) in
        which case suppression also stays within each video.
    Going down the scores, a segment is kept unless a kept segment of the same class (and video)
    overlaps it with tIoU > iou_threshold (strictly, as torchvision.ops.nms). Equal scores keep
    their input order. Returns the kept segments, highest score first.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f'iou_threshold: expected a value in [0, 1], got {iou_threshold}')
    segments = list(segments)
    lengths = {len(seg) for seg in segments}
    if not lengths <= {4} and not lengths <= {5}:
        raise ValueError('segments: expected all (start, end, label, score) or all '
                         f'(video_id, start, end, label, score), got tuples of lengths {sorted(lengths)}')
    with_video = lengths == {5}
    order = sorted(range(len(segments)), key=lambda i: -segments[i][-1])    # sorted() is stable
    kept_by_group = defaultdict(list)       # (video, label) -> (start, end) of the kept segments
    kept = []
    for i in order:
        seg = segments[i]
        video, start, end, label = (seg[0], seg[1], seg[2], seg[3]) if with_video else \
            (None, seg[0], seg[1], seg[2])
        group = kept_by_group[(video, label)]
        if group and np.max(temporal_iou((start, end), group)) > iou_threshold:
            continue
        group.append((start, end))
        kept.append(seg)
    return kept


def interpolated_average_precision(precision, recall):
    """Area under the interpolated precision-recall curve, as ActivityNet's `interpolated_prec_rec`.

    precision, recall: (P,) values after each of the P ranked predictions (recall non-decreasing).
    The curve is closed with (recall 0, precision 0) in front and (recall 1, precision 0) at the end;
    precision is replaced by its running maximum from the right (the best precision reachable at
    this recall or beyond), so the curve never rises; AP = sum over the points where recall
    changes of (recall step) x (interpolated precision there).
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    if precision.shape != recall.shape or precision.ndim != 1:
        raise ValueError(f'precision and recall: expected two 1-D arrays of one shape, got '
                         f'{precision.shape} and {recall.shape}')
    padded_precision = np.concatenate([[0.0], precision, [0.0]])
    padded_recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(padded_precision[::-1])[::-1]
    changes = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    return float(np.sum((padded_recall[changes] - padded_recall[changes - 1]) * envelope[changes]))


def _check_predictions(predictions):
    rows = []
    for i, p in enumerate(predictions):
        if len(p) != 5:
            raise ValueError(f'predictions[{i}]: expected (video_id, start, end, label, score), got {p!r}')
        video, start, end, label, score = p
        if end < start:
            raise ValueError(f'predictions[{i}]: end {end} is before start {start}')
        rows.append((video, float(start), float(end), label, float(score)))
    return rows


def _check_ground_truth(ground_truth):
    rows = []
    for i, g in enumerate(ground_truth):
        if len(g) != 4:
            raise ValueError(f'ground_truth[{i}]: expected (video_id, start, end, label), got {g!r}')
        video, start, end, label = g
        if end < start:
            raise ValueError(f'ground_truth[{i}]: end {end} is before start {start}')
        rows.append((video, float(start), float(end), label))
    return rows


def _average_precision_one_class(predictions, ground_truth, thresholds):
    """ActivityNet's `compute_average_precision_detection` on checked rows of one class."""
    num_positives = len(ground_truth)
    ap = np.zeros(len(thresholds))
    if not predictions:
        return ap
    gt_by_video = defaultdict(list)                      # video -> indices into ground_truth
    for j, (video, _, _, _) in enumerate(ground_truth):
        gt_by_video[video].append(j)
    gt_segments = np.array([(g[1], g[2]) for g in ground_truth], dtype=np.float64).reshape(-1, 2)
    # matched_by[t, j] >= 0: ground truth j is taken at threshold t (each one counts once)
    matched_by = np.full((len(thresholds), num_positives), -1)
    scores = np.array([p[4] for p in predictions])
    order = np.argsort(-scores, kind='stable')           # highest score first; ties in input order
    true_positive = np.zeros((len(thresholds), len(order)))
    for rank, i in enumerate(order):
        video, start, end = predictions[i][:3]
        candidates = np.array(gt_by_video.get(video, []), dtype=np.int64)
        if candidates.size == 0:                         # no ground truth in this video: a false positive
            continue
        tiou = temporal_iou((start, end), gt_segments[candidates])
        by_overlap = candidates[np.argsort(-tiou, kind='stable')]
        tiou_sorted = np.sort(tiou)[::-1]
        for t, threshold in enumerate(thresholds):
            # the unmatched ground truth with the highest tIoU, if that tIoU reaches the threshold
            for j, overlap in zip(by_overlap, tiou_sorted):
                if overlap < threshold:
                    break
                if matched_by[t, j] >= 0:
                    continue
                matched_by[t, j] = rank
                true_positive[t, rank] = 1
                break
    tp = np.cumsum(true_positive, axis=1)
    fp = np.cumsum(1 - true_positive, axis=1)
    recall = tp / num_positives
    precision = tp / (tp + fp)
    for t in range(len(thresholds)):
        ap[t] = interpolated_average_precision(precision[t], recall[t])
    return ap


def average_precision(predictions, ground_truth, tiou_thresholds=(0.3, 0.5, 0.7)):
    """Average precision of the detections of ONE class, at each tIoU threshold, as ActivityNet's
    official evaluation (`compute_average_precision_detection`, Evaluation/eval_detection.py).

    predictions: (video_id, start, end, label, score) tuples; ground_truth: (video_id, start, end,
    label) tuples; all of one label (use `mean_average_precision` for several classes).

    Predictions are taken by decreasing score (equal scores in input order). Each one is matched to
    the not-yet-matched ground-truth segment of the same video with the highest tIoU, if that tIoU
    is >= the threshold: a true positive; otherwise it is a false positive (so is a duplicate
    detection of a segment already found). Precision and recall after each prediction give the
    curve, whose interpolated area (`interpolated_average_precision`) is the AP.
    Returns a float64 array with one AP per threshold. Ground truth must not be empty (AP has no
    meaning without positives); with no predictions the AP is 0.
    """
    thresholds = tuple(float(t) for t in np.atleast_1d(tiou_thresholds))
    predictions = _check_predictions(predictions)
    ground_truth = _check_ground_truth(ground_truth)
    if not ground_truth:
        raise ValueError('ground_truth: expected at least one segment, got none '
                         '(average precision needs positives)')
    labels = {g[3] for g in ground_truth} | {p[3] for p in predictions}
    if len(labels) > 1:
        raise ValueError(f'average_precision expects one class, got labels {sorted(labels, key=str)}; '
                         'use mean_average_precision for several')
    return _average_precision_one_class(predictions, ground_truth, thresholds)


def mean_average_precision(predictions, ground_truth, tiou_thresholds=(0.3, 0.5, 0.7)):
    """Detection mAP at each tIoU threshold, as ActivityNet's official evaluation computes it.

    predictions: (video_id, start, end, label, score) tuples; ground_truth: (video_id, start, end,
    label) tuples, in the same time unit. AP is computed class by class (`average_precision`) over
    the classes that appear in the ground truth, and averaged with equal weight per class.
    A class with ground truth but no prediction has AP 0; predictions of a class absent from the
    ground truth are ignored (ActivityNet indexes classes by its ground truth too).

    Returns a dict:
        'mAP':          {threshold: mAP}
        'average_mAP':  the mean of mAP over the thresholds (ActivityNet's headline number over
                        0.5:0.05:0.95; THUMOS14 papers report it over 0.3:0.1:0.7)
        'AP':           {threshold: {label: AP}}

    Which benchmark this matches: ActivityNet's `eval_detection.py` exactly, and THUMOS14 as
    recent papers evaluate it (BMN, G-TAD, ActionFormer run the ActivityNet code at 0.3..0.7).
    The original THUMOS14 MATLAB kit (`TH14evalDet.m`) differs in three ways not reproduced here:
    it matches each ground-truth segment to the free detection with the highest overlap regardless
    of score, with tIoU > threshold (strict); detections overlapping an 'Ambiguous' segment are not
    counted as false positives; and AP is the 11-point interpolated AP (mean of the interpolated
    precision at recall 0, 0.1, ..., 1).
    """
    thresholds = tuple(float(t) for t in np.atleast_1d(tiou_thresholds))
    predictions = _check_predictions(predictions)
    ground_truth = _check_ground_truth(ground_truth)
    if not ground_truth:
        raise ValueError('ground_truth: expected at least one segment, got none')
    predictions_by_label = defaultdict(list)
    for p in predictions:
        predictions_by_label[p[3]].append(p)
    ground_truth_by_label = defaultdict(list)
    for g in ground_truth:
        ground_truth_by_label[g[3]].append(g)
    labels = sorted(ground_truth_by_label, key=lambda label: (str(type(label)), label))
    ap = np.stack([_average_precision_one_class(predictions_by_label[label],
                                                ground_truth_by_label[label], thresholds)
                   for label in labels])                 # (num_classes, num_thresholds)
    mean_ap = ap.mean(axis=0)
    return {
        'mAP': {t: float(m) for t, m in zip(thresholds, mean_ap)},
        'average_mAP': float(mean_ap.mean()),
        'AP': {t: {label: float(ap[c, k]) for c, label in enumerate(labels)}
               for k, t in enumerate(thresholds)},
    }
