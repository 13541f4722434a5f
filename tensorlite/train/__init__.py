"""Training: the one loop (fit, evaluate, temporal_diagnostic), checkpoints and the evaluation
metrics (the localization and captioning models are not built yet).

    from tensorlite.train import fit, evaluate, temporal_diagnostic
    history = fit(model, train_loader, val_loader, optimizer=opt, epochs=3, checkpoint_dir='run')
    from tensorlite.train import accuracy, mean_average_precision, corpus_bleu
"""
from .bleu import corpus_bleu  # noqa: F401
from .checkpoint import (CheckpointError, capture_rng_state, load_checkpoint,  # noqa: F401
                         restore_rng_state, save_checkpoint)
from .loop import (HISTORY_FIELDS, evaluate, fit, temporal_diagnostic,  # noqa: F401
                   unpack_batch, write_history)
from .localization import (average_precision, interpolated_average_precision,  # noqa: F401
                           mean_average_precision, segments_from_scores, temporal_iou,
                           temporal_nms)
from .metrics import (accuracy, average_clip_scores, confusion_matrix,  # noqa: F401
                      mean_class_accuracy)
