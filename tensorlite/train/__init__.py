"""Training: checkpoints and the evaluation metrics (the fit/evaluate loop and the tasks' models
are not built yet).

    from tensorlite.train import save_checkpoint, load_checkpoint, capture_rng_state
    from tensorlite.train import accuracy, mean_average_precision, corpus_bleu
"""
from .bleu import corpus_bleu  # noqa: F401
from .checkpoint import (CheckpointError, capture_rng_state, load_checkpoint,  # noqa: F401
                         restore_rng_state, save_checkpoint)
from .localization import (average_precision, interpolated_average_precision,  # noqa: F401
                           mean_average_precision, segments_from_scores, temporal_iou,
                           temporal_nms)
from .metrics import (accuracy, average_clip_scores, confusion_matrix,  # noqa: F401
                      mean_class_accuracy)
