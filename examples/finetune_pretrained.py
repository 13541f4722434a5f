"""Fine-tune a pretrained video model on your own videos: a converted Kinetics checkpoint, a new
head for your classes, a few epochs of `fit`.

    tensorlite convert torchvision r3d_18 r3d_18-b3b3357e.pth -o r3d_18.npz   # docs/models.md
    python examples/finetune_pretrained.py ROOT --weights r3d_18.npz
    python examples/finetune_pretrained.py --quick       # here: a demo folder, stand-in weights

ROOT holds one folder per class (examples/train_on_folder.py describes the layout).  The steps,
all public API:

  1. model = build_model(MODEL, 400, preset='paper'); model.load_state_dict(tl.load(WEIGHTS)):
     the converted checkpoint (docs/models.md, "Pretrained weights", says where each hub keeps its
     checkpoints and how to convert them).  WITHOUT --weights the paper model's own random
     initialization stands in for the checkpoint, and the script says so: every step runs, but
     the accuracy is that of an untrained backbone, not of Kinetics features.
  2. The classifier is replaced by a new nn.Linear for ROOT's classes: the module whose weight is
     the conversion's head key (r3d_18 `fc`, i3d_r50 `blocks.6.proj`).
  3. Only the new head trains (the backbone is frozen, and kept in eval mode so that its BatchNorm
     statistics stay the checkpoint's) unless --train-all.
  4. fit on ROOT's training split (80 % of each class, data.stratified_split), then evaluate on
     the rest: clips of --frames frames sampled as `tensorlite train` does (a random window in
     training, the frames spread over the video in evaluation), the short side resized to --size
     and the centre crop, normalized with the mean and std the checkpoint was trained with
     (NORMALIZATION: torchvision's and PyTorchVideo's Kinetics statistics differ).

Without ROOT it writes examples/train_on_folder.py's demo folder (--demo-dir) and trains on it.
"""
import argparse
import os
import sys

import tensorlite as tl
import tensorlite.data as D
import tensorlite.nn as nn
from tensorlite.models import build_model, conversion_head, conversions
from tensorlite.train import evaluate, fit
from tensorlite.train.inference import clip_sampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the demo folder's writer
from train_on_folder import write_demo_folder  # noqa: E402


# the per-channel mean and std of the Kinetics-400 training of each source (torchvision's
# VideoClassification preset; PyTorchVideo's hub models)
NORMALIZATION = {'torchvision': ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)),
                 'pytorchvideo': ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))}


def clip_transform(size, training, source):
    """uint8 frames (T, H, W, 3) -> (3, T, size, size) float32: short side to `size`, centre
    crop, a random flip in training, values in [0, 1] normalized as `source`'s checkpoints
    expect."""
    steps = [D.Resize(size), D.CenterCrop(size)] + ([D.RandomHorizontalFlip()] if training else [])
    return D.Compose(steps + [D.ToTensor(), D.Normalize(*NORMALIZATION[source])])


def replace_head(model, head_key, num_classes):
    """A new nn.Linear for `num_classes` in place of the module whose weight is `head_key`;
    returns it."""
    path = head_key.rsplit('.', 1)[0]
    parent_path, _, name = path.rpartition('.')
    old = model.get_submodule(path)
    new = nn.Linear(old.in_features, num_classes)
    setattr(model.get_submodule(parent_path), name, new)
    return new


class FrozenBackbone(nn.Module):
    """The model with only `head` trained: the rest stays in eval mode (its BatchNorm statistics
    are the checkpoint's) and needs no gradient."""

    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head
        model.requires_grad_(False)
        head.requires_grad_(True)

    def train(self, mode=True):
        super().train(mode)
        self.model.eval()
        self.head.train(mode)
        return self

    def forward(self, x):
        return self.model(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('root', nargs='?', help='videos, one folder per class (default: a demo folder)')
    ap.add_argument('--model', default='r3d_18',
                    help='a model with a conversion (default r3d_18): '
                         + ', '.join(sorted({n for _, n in conversions()})))
    ap.add_argument('--weights', help='its converted checkpoint (tensorlite convert ... -o W.npz); '
                                      'default: random stand-in weights')
    ap.add_argument('--frames', type=int, default=16, help='frames per clip (default 16)')
    ap.add_argument('--size', type=int, default=112, help='frame size (default 112)')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--train-all', action='store_true', help='fine-tune every layer, not the head')
    ap.add_argument('--demo-dir', default=os.path.join('runs', 'demo_videos'))
    ap.add_argument('--quick', action='store_true',
                    help='8 frames of 48 x 48, one epoch, 4 demo videos per class (seconds)')
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.epochs = 8, 48, 1
    root = args.root
    if root is None:
        root = args.demo_dir
        write_demo_folder(root, videos_per_class=4 if args.quick else 16)
        print(f"no ROOT: the demo folder {root}")

    sources = [s for s, n in conversions() if n == args.model]
    if not sources:
        ap.error(f"--model {args.model!r} has no conversion; choose one of "
                 f"{', '.join(sorted({n for _, n in conversions()}))}")
    head_key = conversion_head(sources[0], args.model)
    model = build_model(args.model, 400, preset='paper')
    if args.weights:
        model.load_state_dict(tl.load(args.weights))
        print(f"weights: {args.weights}")
    else:
        print("weights: NONE GIVEN -- the paper model's random initialization stands in for a "
              "pretrained checkpoint: the pipeline runs, the accuracy means nothing about "
              "pretraining (give --weights, see the docstring)")

    folder = D.VideoFolder(root, skip_bad=True)
    classes = list(folder.classes)
    train_idx, val_idx = D.stratified_split(folder.targets, 0.2, seed=0)
    train = D.VideoFolder(root, sampler=clip_sampler(args.frames, True),
                          transform=clip_transform(args.size, True, sources[0]), skip_bad=True)
    val = D.VideoFolder(root, sampler=clip_sampler(args.frames),
                        transform=clip_transform(args.size, False, sources[0]), skip_bad=True)
    train, val = train.subset(train_idx), val.subset(val_idx)
    head = replace_head(model, head_key, len(classes))
    net = model if args.train_all else FrozenBackbone(model, head)
    trained = [p for p in net.parameters() if p.requires_grad]
    total = sum(p.data.size for p in net.parameters())
    print(f"{args.model}: {len(classes)} classes ({', '.join(classes)}); training "
          f"{sum(p.data.size for p in trained):,} of {total:,} parameters on {len(train)} clips, "
          f"validating on {len(val)}")
    optimizer = tl.optim.AdamW(trained, lr=args.lr)
    history = fit(net, D.DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=0),
                  D.DataLoader(val, batch_size=args.batch_size), optimizer=optimizer,
                  epochs=args.epochs, progress='epochs', seed=0)
    metrics = evaluate(net, D.DataLoader(val, batch_size=args.batch_size))
    print(f"validation: top-1 {metrics['top1']:.3f} on {metrics['num_samples']} clips"
          + ('' if args.weights else ' (stand-in weights)'))
    return {'model': args.model, 'classes': classes, 'pretrained': bool(args.weights),
            'trained_parameters': int(sum(p.data.size for p in trained)),
            'history': history, 'val': metrics}


if __name__ == '__main__':
    main()
