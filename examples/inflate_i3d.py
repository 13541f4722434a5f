"""I3D's idea in miniature: train a 2D image CNN, inflate it into a 3D video CNN, check the
"boring video" property, then fine-tune the inflated network on clips and compare it with the
same 3D architecture trained from a fresh random initialisation (Carreira & Zisserman 2017).

    python examples/inflate_i3d.py                  # the default run: about 40 CPU-seconds
    python examples/inflate_i3d.py --epochs-3d 3    # half the 3D training (its main cost)
    python examples/inflate_i3d.py --quick          # a few steps (the smoke test)
    python examples/inflate_i3d.py --json out.json  # also write the numbers as JSON

Steps, all on synthetic data (tensorlite.data.SyntheticActions):

1. A small 2D CNN (three conv-BN-ReLU blocks, global average pool, linear) is trained on single
   frames of the 'scene' family, whose label is in the background: one frame is enough.
2. `inflate_2d_to_3d` turns every Conv2d into a Conv3d whose 3 x k x k kernel is the 2D kernel
   repeated 3 times and divided by 3 (BatchNorm2d -> BatchNorm3d, pools -> 3D pools).
3. The boring-video check: a clip made of one frame repeated T times must give the 2D network's
   logits for that frame. With time_padding_mode='replicate' it does exactly (to float32
   rounding); with the default zero temporal padding the border frames see zeros and the logits
   differ a little. Both maximum differences are printed.
4. Transfer with few clips: the inflated network gets a new 6-way head and is fine-tuned on a few
   'scene' clips (by default 24 clips of 8 frames, other videos than the 2D training frames,
   6 epochs of Adam at lr 3e-3 in batches of 16: 12 steps); the baseline is the same 3D
   architecture with fresh weights (He-normal 3D kernels, as `build_model('i3d')` initialises
   them) and the same new head, trained for the same steps on the same data order.
   This is the case inflation is for: the labels are in appearance, which the 2D network has
   learnt and the inflated kernels keep, while the fresh network must learn it from 24 clips.
   (The 2D network was trained on the same family's labels, so this measures that the 2D
   features carry over into the 3D network, not transfer between different tasks.)
5. Motion: the same two starts (a new 4-way head each) are trained on the 'motion' family (an
   object moving right, left, down or up: no single frame tells; 512 clips, 6 epochs). The
   inflated kernels are constant in time, so the inflated network starts blind to the direction
   of time -- a clip moving left and the same clip reversed (moving right) get the same output --
   and scene features are not motion features, so here the inflated start need not win.

For 4 and 5 both validation accuracies (96 held-out clips) are printed with a verdict: which
start won, or that the difference is within two binomial standard errors (noise). The script
prints what it measured, not what the paper found on ImageNet -> Kinetics. The default run
(seed 0, single-threaded: 37 CPU-seconds) printed: 2D scene accuracy 1.000; boring-video
differences 3.5e-06 (replicate) and 1.33 (zeros); scene clips: inflated 1.000, fresh weights
(printed as 'scratch') 0.688, the inflated start wins; motion: inflated 0.333, fresh 1.000, the
fresh start wins (the inflated network, which starts symmetric in time, stayed near chance).
"""
import argparse
import math
import time

import numpy as np

import tensorlite as tl
import tensorlite.data as D
import tensorlite.nn as nn
import tensorlite.optim as optim
from tensorlite.utils import write_json
from tensorlite.models import inflate_2d_to_3d
from tensorlite.train import evaluate, fit


class FrameNet(nn.Module):
    """A small image classifier, (N, 3, H, W) -> (N, num_classes), written "inflation-ready": its
    forward uses only its submodules and `flatten(1)`, which work on 5-D tensors as well, so the
    inflated copy runs unchanged on clips (N, 3, T, H, W)."""

    def __init__(self, num_classes, widths=(8, 16, 32)):
        super().__init__()
        layers, channels = [], 3
        for k, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            if k < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class SceneFrames:
    """The 'scene' family as single images: item i -> (float32 (3, S, S), label)."""

    def __init__(self, num_clips, size, seed):
        self.clips = D.SyntheticActions('scene', num_clips, num_frames=1, size=size, seed=seed)
        self.num_classes = self.clips.num_classes

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        clip, label = self.clips[i]          # (3, 1, S, S)
        return clip[:, 0], label


def boring_video_difference(net2d, net3d, frames, num_frames):
    """Max |net3d(frame repeated num_frames times) - net2d(frame)| over a batch of frames
    (N, 3, H, W), both networks in eval mode (BatchNorm uses its running statistics)."""
    net2d.eval()
    net3d.eval()
    with tl.no_grad():
        clips = frames.unsqueeze(2).expand(-1, -1, num_frames, -1, -1)   # (N, 3, T, H, W)
        difference = np.abs(net3d(clips).numpy() - net2d(frames).numpy())
    return float(difference.max())


def compare(acc_inflated, acc_scratch, num_clips):
    """Which start won, unless the two accuracies are within two standard errors of each other
    (binomial, over num_clips validation clips), where the difference may be noise."""
    se = math.sqrt((acc_inflated * (1 - acc_inflated) + acc_scratch * (1 - acc_scratch))
                   / num_clips)
    difference = acc_inflated - acc_scratch
    if abs(difference) <= 2 * se:
        return (f"no clear winner: the difference {difference:+.3f} is within two standard "
                f"errors ({2 * se:.3f} with {num_clips} validation clips)")
    winner = 'the inflated start wins' if difference > 0 else 'training from scratch wins'
    return f"{winner} by {abs(difference):.3f} (more than two standard errors, {2 * se:.3f})"


def fresh_3d(num_classes):
    """The inflated architecture with fresh weights: FrameNet inflated, then every Conv3d kernel
    drawn again (He normal, fan-out, as `build_model('i3d')` does).  Inflating a random 2D network
    alone would give kernels constant in time, blind to the direction of time from the start."""
    net = inflate_2d_to_3d(FrameNet(num_classes), time_kernel=3, time_padding_mode='replicate')
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
    return net


def compare_starts(inflated, train_data, val_data, args, what):
    """Fine-tune `inflated` and train a fresh 3D network (`fresh_3d`), each with the same new
    head, on train_data for the same steps and data order; print and return both final validation
    accuracies, the verdict of `compare` and the two histories."""
    classes = train_data.num_classes
    scratch = fresh_3d(classes)
    for net in (inflated, scratch):
        tl.manual_seed(args.seed + 1)                # the same new head for both
        net.fc = nn.Linear(net.fc.in_features, classes)
    inflated_history = train_3d(inflated, train_data, val_data, args, 'inflated')
    scratch_history = train_3d(scratch, train_data, val_data, args, 'scratch')
    acc_inflated = inflated_history[-1]['val_accuracy']
    acc_scratch = scratch_history[-1]['val_accuracy']
    verdict = compare(acc_inflated, acc_scratch, len(val_data))
    print(f"  {what} accuracy after {args.epochs_3d} epochs: inflated {acc_inflated:.3f}, "
          f"scratch {acc_scratch:.3f}: {verdict}")
    return acc_inflated, acc_scratch, verdict, inflated_history, scratch_history


def train_3d(net, train_data, val_data, args, label):
    """Train `net` on clips with the run's fixed 3D settings; returns the history."""
    train = D.DataLoader(train_data, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    val = D.DataLoader(val_data, batch_size=64)
    optimizer = optim.Adam(net.parameters(), lr=args.lr_3d)
    started = time.perf_counter()
    history = fit(net, train, val, optimizer=optimizer, epochs=args.epochs_3d, seed=args.seed,
                  progress=False)
    for row in history:
        print(f"  {label:<9} epoch {row['epoch']}: train loss {row['train_loss']:.3f}  "
              f"val acc {row['val_accuracy']:.3f}")
    print(f"  {label}: {time.perf_counter() - started:.1f} s")
    return history


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', type=int, default=32, help='frame size in pixels (default 32)')
    ap.add_argument('--frames', type=int, default=8, help='frames per clip (default 8)')
    ap.add_argument('--scene-clips', type=int, default=384,
                    help='training frames for the 2D network (default 384)')
    ap.add_argument('--epochs-2d', type=int, default=3, help='2D training epochs (default 3)')
    ap.add_argument('--scene-finetune-clips', type=int, default=24,
                    help="'scene' clips for fine-tuning the 3D networks (default 24)")
    ap.add_argument('--motion-clips', type=int, default=512,
                    help="'motion' training clips for the 3D networks (default 512)")
    ap.add_argument('--val-clips', type=int, default=96, help='validation clips (default 96)')
    ap.add_argument('--epochs-3d', type=int, default=6,
                    help='epochs of each 3D training, on scene clips and on motion (default 6)')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--lr', type=float, default=1e-2,
                    help='Adam learning rate of the 2D network (default 1e-2)')
    ap.add_argument('--lr-3d', type=float, default=3e-3,
                    help='Adam learning rate of the 3D networks (default 3e-3)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', metavar='PATH', help='also write the results to this JSON file')
    ap.add_argument('--quick', action='store_true',
                    help='a few steps on a few clips (seconds; for the smoke test)')
    args = ap.parse_args(argv)
    if args.quick:
        args.scene_clips, args.epochs_2d, args.motion_clips = 32, 1, 16
        args.scene_finetune_clips = 8
        args.val_clips, args.epochs_3d = 16, 1
    for name in ('size', 'scene_clips', 'epochs_2d', 'scene_finetune_clips', 'motion_clips',
                 'val_clips', 'epochs_3d', 'batch_size'):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.frames < 3:
        ap.error(f"--frames must be >= 3 (the inflated kernels span 3 frames), got {args.frames}")
    return args


def main(argv=None):
    args = parse_args(argv)
    tl.manual_seed(args.seed)
    started = time.perf_counter()

    # 1. a 2D network on single scene frames
    scene_train = SceneFrames(args.scene_clips, args.size, seed=args.seed)
    scene_val = SceneFrames(args.val_clips, args.size, seed=args.seed + 1)
    net2d = FrameNet(scene_train.num_classes)
    print(f"1. 2D CNN on single 'scene' frames ({len(scene_train)} train, {len(scene_val)} val, "
          f"{scene_train.num_classes} classes)")
    fit(net2d, D.DataLoader(scene_train, batch_size=32, shuffle=True, seed=args.seed),
        optimizer=optim.Adam(net2d.parameters(), lr=args.lr), epochs=args.epochs_2d,
        seed=args.seed, progress=False)
    scene_val_loader = D.DataLoader(scene_val, batch_size=64)
    acc_2d = evaluate(net2d, scene_val_loader)['top1']
    print(f"  2D scene accuracy: {acc_2d:.3f} (chance {1 / scene_train.num_classes:.3f})")

    # 2-3. inflate, and check the boring-video property on scene frames
    print(f"2. inflate_2d_to_3d(time_kernel=3); 3. boring videos: one frame repeated "
          f"{args.frames} times")
    frames = tl.tensor(np.stack([scene_val[i][0] for i in range(min(len(scene_val), 32))]))
    differences = {}
    for mode in ('replicate', 'zeros'):
        net3d = inflate_2d_to_3d(net2d, time_kernel=3, time_padding_mode=mode)
        differences[mode] = boring_video_difference(net2d, net3d, frames, args.frames)
        print(f"  time_padding_mode={mode!r:<12} max |3D logits - 2D logits| = "
              f"{differences[mode]:.3g}")
    inflated = inflate_2d_to_3d(net2d, time_kernel=3, time_padding_mode='replicate')

    # 4. few 'scene' clips: the inflated start vs fresh weights
    scene_clips = D.SyntheticActions('scene', args.scene_finetune_clips, num_frames=args.frames,
                                     size=args.size, seed=args.seed + 2)
    scene_clips_val = D.SyntheticActions('scene', args.val_clips, num_frames=args.frames,
                                         size=args.size, seed=args.seed + 3)
    print(f"4. 'scene' clips ({len(scene_clips)} train, {len(scene_clips_val)} val clips of "
          f"{args.frames} x {args.size} x {args.size}, {scene_clips.num_classes} classes, chance "
          f"{scene_clips.chance:.3f}), a new head, {args.epochs_3d} epochs each, Adam lr "
          f"{args.lr_3d:g}")
    scene = compare_starts(inflated, scene_clips, scene_clips_val, args, 'scene')

    # 5. motion: the same two starts, each with a new 4-way head
    motion_train = D.SyntheticActions('motion', args.motion_clips, num_frames=args.frames,
                                      size=args.size, seed=args.seed)
    motion_val = D.SyntheticActions('motion', args.val_clips, num_frames=args.frames,
                                    size=args.size, seed=args.seed + 1)
    print(f"5. 'motion' ({len(motion_train)} train, {len(motion_val)} val clips, "
          f"{motion_train.num_classes} classes, chance {motion_train.chance:.3f}), "
          f"{args.epochs_3d} epochs each")
    inflated = inflate_2d_to_3d(net2d, time_kernel=3, time_padding_mode='replicate')
    acc_inflated, acc_scratch, verdict, inflated_history, scratch_history = compare_starts(
        inflated, motion_train, motion_val, args, 'motion')
    seconds = time.perf_counter() - started
    print(f"done in {seconds:.1f} s")

    results = {'scene_accuracy_2d': acc_2d,
               'boring_video_max_difference': differences,
               'scene_accuracy_inflated': scene[0], 'scene_accuracy_scratch': scene[1],
               'scene_chance': scene_clips.chance, 'scene_verdict': scene[2],
               'scene_inflated_history': scene[3], 'scene_scratch_history': scene[4],
               'motion_accuracy_inflated': acc_inflated, 'motion_accuracy_scratch': acc_scratch,
               'motion_chance': motion_train.chance, 'verdict': verdict,
               'inflated_history': inflated_history, 'scratch_history': scratch_history,
               'seconds': seconds}
    if args.json:
        write_json(args.json, results)   # atomic, parent folder created
    return results


if __name__ == '__main__':
    main()
