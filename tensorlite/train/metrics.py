"""Classification metrics for video models: top-k accuracy, mean class accuracy, the confusion
matrix, and the averaging of scores over the K views (temporal clips x spatial crops) of
multi-clip evaluation.

Everything here works on NumPy arrays, outside the autograd graph; a tensorlite Tensor is accepted
anywhere an array is (its data is copied to the CPU if it lives on the GPU).

    scores = model(clips)                                  # (N, C) logits
    top1, top5 = accuracy(scores, labels, topk=(1, 5))     # fractions in [0, 1]
    cm = confusion_matrix(scores.argmax(1), labels, num_classes=C)
"""
import numpy as np

__all__ = ['accuracy', 'mean_class_accuracy', 'confusion_matrix', 'average_clip_scores']


def _as_numpy(x, name):
    """`x` as a NumPy array: a tensorlite Tensor gives its data (copied from the GPU if needed),
    a CuPy array is copied to the host, anything else goes through `np.asarray`."""
    if hasattr(x, 'requires_grad') and hasattr(x, 'numpy'):      # a tensorlite Tensor
        if getattr(x, 'device', 'cpu') != 'cpu':
            x = x.cpu()
        return np.asarray(x.numpy())
    if type(x).__module__.split('.')[0] == 'cupy':
        return x.get()
    try:
        return np.asarray(x)
    except Exception as error:
        raise TypeError(f'{name}: expected an array or a Tensor, got {type(x).__name__}') from error


def _check_labels(labels, n, num_classes, name='labels'):
    """Integer class indices of shape (n,), each in [0, num_classes) when num_classes is given."""
    labels = _as_numpy(labels, name)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f'{name}: expected shape ({n},) to match the predictions, got {labels.shape}')
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError(f'{name}: expected integer class indices, got dtype {labels.dtype} '
                             'with fractional values')
    labels = labels.astype(np.int64)
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'{name}: expected class indices in [0, {num_classes}), got values from '
                         f'{labels.min()} to {labels.max()}')
    return labels


def _predicted_labels(pred, name='pred'):
    """Predicted class indices: `pred` itself if it is (N,), the argmax over classes if (N, C).
    np.argmax picks the first of tied maxima, the same choice as `accuracy`'s top-1."""
    pred = _as_numpy(pred, name)
    if pred.ndim == 2:
        return pred.argmax(axis=1)
    if pred.ndim != 1:
        raise ValueError(f'{name}: expected class indices (N,) or scores (N, C), got shape {pred.shape}')
    return pred


def accuracy(logits_or_probs, labels, topk=(1,)):
    """Top-k accuracy: the fraction of the N samples whose true label is among the k highest scores.

    logits_or_probs: (N, C) scores, any monotone form (logits, probabilities, log-probabilities:
        the ranking is the same). labels: (N,) integer class indices.
    topk: an int, giving one float, or a tuple of ints, giving a tuple of floats in that order.

    Ties: classes are ranked by a stable sort of the negated scores, so among equal scores the
    lower class index ranks first (a model that outputs a constant gets its top-1 counted as class
    0). PyTorch's `topk` leaves the order of ties unspecified; here it is fixed so results repeat.
    """
    scores = _as_numpy(logits_or_probs, 'logits_or_probs')
    if scores.ndim != 2:
        raise ValueError(f'logits_or_probs: expected shape (N, C), got {scores.shape}')
    n, num_classes = scores.shape
    if n == 0:
        raise ValueError('accuracy of an empty batch is undefined: logits_or_probs has N = 0')
    labels = _check_labels(labels, n, num_classes)
    single = isinstance(topk, (int, np.integer))
    ks = (int(topk),) if single else tuple(int(k) for k in topk)
    for k in ks:
        if not 1 <= k <= num_classes:
            raise ValueError(f'topk: expected each k in [1, {num_classes}] (the number of classes), got {k}')
    # (N, C): class indices from the highest score to the lowest; stable, so ties keep index order
    ranking = np.argsort(-scores, axis=1, kind='stable')
    # (N,): the position of the true label in that ranking, 0 for the top prediction
    rank_of_label = np.argmax(ranking == labels[:, None], axis=1)
    results = tuple(float(np.mean(rank_of_label < k)) for k in ks)
    return results[0] if single else results


def confusion_matrix(pred, labels, num_classes=None):
    """The (num_classes, num_classes) matrix of counts: entry [i, j] is the number of samples whose
    true class is i and whose predicted class is j (rows = true, columns = predicted, as sklearn).

    pred: (N,) predicted class indices, or (N, C) scores whose argmax is taken. labels: (N,) true
    class indices. num_classes defaults to 1 + the largest index seen (C when scores are given).
    The argument order (predictions first) is torchmetrics'; sklearn's is (y_true, y_pred).
    """
    pred_array = _as_numpy(pred, 'pred')
    if num_classes is None and pred_array.ndim == 2:
        num_classes = pred_array.shape[1]
    pred = _predicted_labels(pred_array)
    labels = _check_labels(labels, pred.shape[0], num_classes)
    pred = _check_labels(pred, pred.shape[0], num_classes, name='pred')
    if num_classes is None:
        num_classes = int(max(pred.max(initial=-1), labels.max(initial=-1))) + 1
    # a pair (i, j) becomes the flat index i * C + j, so one bincount counts every cell
    counts = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def mean_class_accuracy(pred, labels, num_classes=None):
    """The mean over classes of per-class recall (correct / samples of that class), counting only the
    classes present in `labels`: a class with no sample has no recall to average. Unlike accuracy,
    every class weighs the same however many samples it has (UCF101/HMDB51/Kinetics report both).

    pred: (N,) predicted class indices, or (N, C) scores whose argmax is taken. labels: (N,).
    """
    cm = confusion_matrix(pred, labels, num_classes)
    support = cm.sum(axis=1)                  # samples per true class
    present = support > 0
    if not present.any():
        raise ValueError('mean class accuracy of an empty batch is undefined: labels has N = 0')
    recall = np.diag(cm)[present] / support[present]
    return float(recall.mean())


def _softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)       # exp never overflows
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def average_clip_scores(scores, reduce='mean', on='probabilities'):
    """Fuse the scores of K views of each video into one: (N, K, C) -> (N, C).

    In multi-clip evaluation each test video is cut into K views (e.g. 10 temporal clips x 3
    spatial crops = 30), the model scores every view, and the video's prediction fuses them.

    on='probabilities' (default): softmax over the C classes of each view, then fuse; every view
        then carries the same total weight (1), however confident its logits are.
    on='logits': fuse the raw scores; a view with large logits can outvote the others.
    reduce='mean' (default) or 'max' (per class, the best view).

    What the reference codebases do: MMAction2's heads take `average_clips='prob'` (softmax, then
    mean over views; the setting of its test configs), 'score' (mean of raw scores) or None.
    PySlowFast (the SlowFast/X3D code whose models PyTorchVideo packages) applies the head's softmax
    at test time and fuses views by `TEST.ENSEMBLE_METHOD` 'sum' (the default; the same ranking as
    the mean) or 'max'. So the default here is MMAction2's 'prob' and PySlowFast's 'sum'.
    """
    scores = _as_numpy(scores, 'scores')
    if scores.ndim != 3:
        raise ValueError(f'scores: expected shape (N, K, C) for N videos, K views, C classes, '
                         f'got {scores.shape}')
    if scores.shape[1] == 0:
        raise ValueError(f'scores: expected at least one view (K >= 1), got shape {scores.shape}')
    if on == 'probabilities':
        scores = _softmax(scores.astype(np.result_type(scores.dtype, np.float32)), axis=2)
    elif on != 'logits':
        raise ValueError(f"on: expected 'probabilities' or 'logits', got {on!r}")
    if reduce == 'mean':
        return scores.mean(axis=1)
    if reduce == 'max':
        return scores.max(axis=1)
    raise ValueError(f"reduce: expected 'mean' or 'max', got {reduce!r}")
