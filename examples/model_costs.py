"""What every architecture costs, from tensorlite.models.summary: the cost lines of docs/models.md.

    python examples/model_costs.py                   # tiny presets on 16 x 32 x 32 clips
    python examples/model_costs.py --paper           # also the paper presets on their published
                                                     # inputs (minutes: each runs one forward)
    python examples/model_costs.py c3d i3d --paper   # only these

For each model: parameters, multiply-adds of one forward on one clip, and the memory of the layer
outputs of that forward (about what training keeps for backward), at the tiny preset with 4 classes
and, with --paper, at the paper preset with the class count and input of the reference
configuration (../shared/REFERENCES.md), as the registry declares them
(tensorlite.models.paper_num_classes and preset_clip).
"""
import argparse
import time

from tensorlite.models import list_models, model_summary

TINY_CLASSES = 4


def row(name, preset):
    """One table row: the model at `preset` on one clip of the preset's size, with 4 classes
    (tiny) or the published configuration's (paper: paper_num_classes, preset_clip)."""
    start = time.perf_counter()
    s = model_summary(name, TINY_CLASSES if preset == 'tiny' else None, preset=preset)
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
        print(row(name, 'tiny'), flush=True)
        if args.paper:
            print(row(name, 'paper'), flush=True)


if __name__ == '__main__':
    main()
