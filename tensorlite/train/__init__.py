"""Training: the one loop (fit, evaluate, temporal_diagnostic), checkpoints, the evaluation
metrics, and runs of `tensorlite train` (train/run.py: run_training, evaluate_run, load_run;
train/inference.py: predict).

    from tensorlite.train import fit, evaluate, temporal_diagnostic
    history = fit(model, train_loader, val_loader, optimizer=opt, epochs=3, checkpoint_dir='run')
    from tensorlite.train import accuracy, mean_average_precision, corpus_bleu
    model, config = load_run('runs/c3d')          # a `tensorlite train` run, rebuilt
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
from .inference import load_clip, predict  # noqa: F401
from .run import (RunError, RunFileError, evaluate_run, load_run, resolve_checkpoint,  # noqa: F401
                  run_training)
