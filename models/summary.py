"""summary(model, input_shape): what each layer of a model costs.

    from tensorlite.models import build_model, summary, model_summary
    s = summary(build_model('c3d', 101, preset='paper'), (1, 3, 16, 112, 112))
    print(s)                              # one row per layer, then the totals
    s.total_params, s.total_macs, s.total_activation_bytes
    s = model_summary('c3d', preset='paper')                  # the same: 101 classes, 16 x 112
    s = model_summary('c3d', preset='paper', frames=8, size=64)   # C3D built for 8 x 64 x 64

One forward runs on zeros without a graph.  Per module it records:

- output shape (the first output when a module returns several);
- parameters: those registered on the module itself (not its children's), so the column sums to
  the model's total;
- multiply-adds: counted where the arithmetic happens, in the Functions the module's forward calls
  directly (not through a child module): convolution out.numel * C_in/groups * kernel volume,
  linear and matmul out.numel * inner size, attention B * L * S * (E + E_v) (QK^T and PV), the
  fused LSTM/GRU gates * H * (I + H) per step and sample.  Elementwise work, norms and pools are
  not counted: they are memory-bound, and multiply-adds are the lesson's measure of compute;
- activation memory: bytes of the module's output, for the leaf modules (layers without children),
  summed as the total -- about what a training step keeps for backward.  A module that runs several
  times in one forward (C3D's one `relu` after fc6 and fc7) adds every output: `calls` counts them,
  and the table marks such a row 'x2'.  Its output shape is the first call's.

The lesson's point in numbers: a 3x3x3 filter on RGB has 81 weights against 27 for a 3x3 2D
filter, and does 3x the multiply-adds per output value.
"""
import tensorlite as tl
from tensorlite.profiler import forward_macs, observe_forwards



class Row:
    __slots__ = ('name', 'kind', 'shape', 'params', 'macs', 'activation_bytes', 'leaf', 'calls')

    def __init__(self, name, kind, params, leaf):
        self.name, self.kind, self.params, self.leaf = name, kind, params, leaf
        self.shape, self.macs, self.activation_bytes, self.calls = None, 0, 0, 0


class Summary:
    """Rows (one per module that has parameters of its own, multiply-adds or no children) and
    totals; str() is the table."""

    def __init__(self, model_name, input_shapes, rows, total_params, config=None):
        self.model_name, self.input_shapes, self.rows = model_name, input_shapes, rows
        self.total_params = total_params
        self.config = config          # model_summary: name, preset, num_classes, frames, size, ...
        self.total_macs = sum(r.macs for r in rows)
        self.total_activation_bytes = sum(r.activation_bytes for r in rows if r.leaf)

    def __str__(self):
        head = (f"{'layer':44s} {'type':26s} {'output shape':22s} {'params':>12s} "
                f"{'MACs':>15s} {'act. MiB':>9s}")
        lines = [f"{self.model_name} on input {', '.join(map(str, self.input_shapes))}", head,
                 '-' * len(head)]
        for r in self.rows:
            if not (r.params or r.macs or r.leaf):
                continue
            shape = '' if r.shape is None else str(r.shape)
            act = f"{r.activation_bytes / 2**20:9.2f}" if r.leaf else ' ' * 9
            kind = r.kind if r.calls <= 1 else f"{r.kind} x{r.calls}"
            lines.append(f"{r.name[:44]:44s} {kind[:26]:26s} {shape[:22]:22s} {r.params:12,d} "
                         f"{r.macs:15,d} {act}")
        lines.append('-' * len(head))
        lines.append(f"{'total':44s} {'':26s} {'':22s} {self.total_params:12,d} "
                     f"{self.total_macs:15,d} {self.total_activation_bytes / 2**20:9.2f}")
        lines.append(f"{self.total_params / 1e6:.2f} M parameters, {self.total_macs / 1e9:.3f} G "
                     f"multiply-adds, {self.total_activation_bytes / 2**20:.1f} MiB of layer "
                     "outputs per forward")
        return '\n'.join(lines)

    __repr__ = __str__


def _first_array(out):
    if isinstance(out, tl.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            found = _first_array(o)
            if found is not None:
                return found
    return None


def summary(model, input_shape, dtype='float32', device='cpu'):
    """Run `model` once on zeros of `input_shape` (a shape, or a list of shapes for a model with
    several inputs, e.g. two-stream's (rgb, flow)) in eval mode without a graph, and return the
    Summary of its layers.  The model's train/eval mode is restored afterwards."""
    shapes = [tuple(input_shape)] if all(isinstance(d, int) for d in input_shape) \
        else [tuple(s) for s in input_shape]
    inputs = [tl.zeros(*s, dtype=getattr(tl, dtype) if isinstance(dtype, str) else dtype,
                       device=device) for s in shapes]
    rows, stack, wrapped = {}, [], []
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m._parameters.values() if p is not None)
        leaf = not any(True for _ in m.children())
        rows[name] = Row(name or '(model)', type(m).__name__, own, leaf)
        original = m.forward

        def forward(*args, _m=m, _name=name, _original=original, **kwargs):
            stack.append(_name)
            try:
                out = _original(*args, **kwargs)
            finally:
                stack.pop()
            first = _first_array(out)
            row = rows[_name]
            row.calls += 1
            if first is not None and row.shape is None:
                row.shape = tuple(first.shape)
            if first is not None and row.leaf:
                row.activation_bytes += first.data.nbytes
            return out
        m.forward = forward                     # an instance attribute shadows the class method
        wrapped.append(m)

    def observe(fn, args, outs):
        if stack:
            rows[stack[-1]].macs += int(forward_macs(fn, args, outs))

    was_training = model.training
    try:
        model.eval()
        with tl.no_grad(), observe_forwards(observe):
            model(*inputs)
    finally:
        for m in wrapped:
            del m.forward
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    return Summary(type(model).__name__, shapes, list(rows.values()), total)


def model_summary(name, num_classes=None, preset='tiny', frames=None, size=None, batch=1,
                  dtype='float32', device='cpu', **overrides):
    """The Summary of the registered model `name` built at `preset` for clips of `frames` frames
    of size x size, run on `batch` such clips (and, for two-stream, their flow stacks).

    num_classes None: the published configuration's for 'paper' (paper_num_classes: C3D 101, the
    Kinetics models 400, ...), 10 for 'tiny'.  frames / size None: the preset's clip (preset_clip:
    tiny 16 x 32; paper C3D 16 x 112, I3D 8 x 224, ...).  A model that fixes its clip is built for
    the one asked (clip_overrides: e.g. C3D frames=8, size=64 and clamp_time_pools); other
    overrides go to build_model.  ValueError, from the registry or the model, when the model
    cannot take that clip.  The Summary's `config` records name, preset, num_classes, frames, size
    and the build_model overrides used."""
    from .registry import build_model, clip_overrides, input_shapes, paper_num_classes, preset_clip
    default_frames, default_size = preset_clip(name, preset)
    frames = default_frames if frames is None else frames
    size = default_size if size is None else size
    if num_classes is None:
        num_classes = (paper_num_classes(name) if preset == 'paper' else None) or 10
    built_for = {**clip_overrides(name, frames, size), **overrides}
    model = build_model(name, num_classes, preset=preset, **built_for)
    shapes = input_shapes(model, frames, size, batch=batch)
    result = summary(model, shapes if len(shapes) > 1 else shapes[0], dtype=dtype, device=device)
    result.model_name = f"{name} ({preset}, {num_classes} classes)"
    result.config = {'name': name, 'preset': preset, 'num_classes': num_classes, 'frames': frames,
                     'size': size, 'overrides': built_for}
    return result
