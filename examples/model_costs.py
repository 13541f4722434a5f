"""What every architecture costs, from tensorlite.models.summary: the cost lines of docs/models.md.

    python examples/model_costs.py                   # tiny presets on 16 x 32 x 32 clips
    python examples/model_costs.py --paper           # also the paper presets on their published
                                                     # inputs (minutes: each runs one forward)
    python examples/model_costs.py c3d i3d --paper   # only these

For each model: parameters, multiply-adds of one forward on one clip, and the memory of the layer
outputs of that forward (about what training keeps for backward), at the tiny preset with 4 classes
and, with --paper, at the paper preset with the class count and input of the reference
configuration (../shared/REFERENCES.md).
"""
import argparse
import time

from tensorlite.models import build_model, list_models, summary

TINY_INPUT = (1, 3, 16, 32, 32)
TWO_STREAM_FLOW_CHANNELS = 20            # 2L with L = 10 consecutive flows (Simonyan & Zisserman)

# paper presets: (classes, input shape(s)) of the published configuration
PAPER = {
    'c3d': (101, (1, 3, 16, 112, 112)),
    'i3d': (400, (1, 3, 8, 224, 224)),
    'slowfast': (400, (1, 3, 32, 224, 224)),
    'timesformer': (400, (1, 3, 8, 224, 224)),
    'vivit': (400, (1, 3, 32, 224, 224)),
    'cnn_lstm': (101, (1, 3, 16, 227, 227)),
    'two_stream': (101, [(1, 3, 1, 224, 224), (1, TWO_STREAM_FLOW_CHANNELS, 224, 224)]),
    'single_frame': (487, (1, 3, 1, 170, 170)),
    'late_fusion': (487, (1, 3, 15, 170, 170)),
    'late_fusion_concat': (487, (1, 3, 2, 170, 170)),      # Karpathy's late fusion: 2 frames
    'early_fusion': (487, (1, 3, 10, 170, 170)),
}


def paper_setting(name):
    if name in PAPER:
        return PAPER[name]
    for family, setting in PAPER.items():
        if name == family or name.startswith(family + '_'):
            return setting
    raise KeyError(name)


def tiny_input(name):
    if name.startswith('two_stream'):
        return [TINY_INPUT, (1, TWO_STREAM_FLOW_CHANNELS, 32, 32)]
    return TINY_INPUT


def row(name, preset, classes, shape):
    start = time.perf_counter()
    s = summary(build_model(name, classes, preset=preset), shape)
    return (f"| {name} | {preset} | {s.total_params:,d} | {s.total_macs / 1e9:.3f} | "
            f"{s.total_activation_bytes / 2**20:.1f} | {time.perf_counter() - start:.1f} s |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', help='models (default: all registered)')
    ap.add_argument('--paper', action='store_true', help='also the paper presets')
    args = ap.parse_args()
    names = args.names or list_models()
    print("| model | preset | parameters | GMAC per clip | layer outputs MiB | summary took |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in names:
        print(row(name, 'tiny', 4, tiny_input(name)), flush=True)
        if args.paper:
            classes, shape = paper_setting(name)
            print(row(name, 'paper', classes, shape), flush=True)


if __name__ == '__main__':
    main()
