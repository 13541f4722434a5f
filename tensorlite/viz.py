"""`to_dot(tensor)`: the graph that produced a tensor, as Graphviz DOT text.

Boxes are Functions (their backward nodes), ellipses are leaves (shape, dtype; parameters that
require grad are filled), the root is a double ellipse.  Render with `dot -Tpng graph.dot -o g.png`.
"""
from .autograd.tensor import Tensor


def _meta(shape, dtype):
    return f"{tuple(int(s) for s in shape)} {dtype}"


def to_dot(tensor, name='tensorlite'):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    lines = [f'digraph {name} {{', '  rankdir=BT;', '  node [fontname="Helvetica", fontsize=10];',
             f'  root [label="output\\n{_meta(tensor.shape, tensor.dtype)}", shape=doublecircle];']
    ids = {}

    def node_id(obj, prefix):
        if id(obj) not in ids:
            ids[id(obj)] = f'{prefix}{len(ids)}'
        return ids[id(obj)]

    if tensor.grad_fn is None:
        lines.append('}')
        return '\n'.join(lines)
    start = tensor.grad_fn
    lines.append(f'  {node_id(start, "f")} -> root;')
    seen, stack = {id(start)}, [start]
    while stack:                                   # iterative, like the engine
        fn = stack.pop()
        fid = node_id(fn, 'f')
        outs = ', '.join(_meta(s, d) for s, d, _ in fn.output_meta)
        lines.append(f'  {fid} [label="{fn.name}\\n{outs}", shape=box];')
        for k, (edge, meta) in enumerate(zip(fn.edges, fn.input_meta)):
            if edge is None:
                continue
            if isinstance(edge, Tensor):
                lid = node_id(edge, 'leaf')
                if id(edge) not in seen:
                    seen.add(id(edge))
                    lines.append(f'  {lid} [label="leaf\\n{_meta(edge.shape, edge.dtype)}", '
                                 'shape=ellipse, style=filled, fillcolor=lightblue];')
                lines.append(f'  {lid} -> {fid} [label="{k}"];')
            else:
                child, idx = edge
                cid = node_id(child, 'f')
                lines.append(f'  {cid} -> {fid} [label="{k}"];')
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
    lines.append('}')
    return '\n'.join(lines)


def flow_visual(video, output, frames=slice(0, 9), max_flow=None, columns=None, fps=None):
    """A video's optical flow (Farnebaeck), colour-coded, written to `output`: a .png figure of
    the frames and their flows in rows with the colour key (needs matplotlib), or a .gif of
    frame | flow side by side.  `frames` selects the frames (a slice or indices; at least two).
    One colour scale serves every panel so that colours compare across time: `max_flow` pixels,
    default a high percentile of |flow| with a scene cut left out (plots.flow_scale).

    Returns {'indices', 'flows' (T-1, H, W, 2), 'max_magnitude', 'max_flow'}.  ValueError for a
    bad output name or frame selection; data.VideoReadError for an unreadable video."""
    import os

    import numpy as np

    from . import data as D
    from .data.flow import flow_to_color
    from .plots import flow_scale
    ext = os.path.splitext(output)[1].lower()
    if ext not in ('.png', '.gif'):
        raise ValueError(f"-o/--output must end in .png (a figure) or .gif (an animation), "
                         f"got {output!r}")
    if max_flow is not None and not max_flow > 0:
        raise ValueError(f"--max-flow must be > 0 pixels, got {max_flow}")
    info = D.video_info(video)
    indices = np.arange(info.num_frames)[frames]
    if len(indices) < 2:
        raise ValueError(f"--frames selects {len(indices)} of the video's {info.num_frames} "
                         f"frames; flow needs at least 2")
    clip, info = D.read_video(video, frames=indices)
    flows = D.clip_flows(clip)                                      # (T-1, H, W, 2)
    scale = max_flow or flow_scale(flows)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if ext == '.png':
        from . import plots
        plots.plot_flow(flows, output, frames=clip, max_flow=max_flow, columns=columns,
                        frame_indices=[int(k) for k in indices])
    else:
        colours = np.stack([flow_to_color(f, max_flow=scale) for f in flows])   # (T-1, H, W, 3)
        side_by_side = np.concatenate([clip[:-1], colours], axis=2)       # (T-1, H, 2W, 3)
        D.write_video(output, side_by_side, fps=fps or info.fps or 8)
    return {'indices': indices, 'flows': flows, 'max_flow': float(scale),
            'max_magnitude': float(np.sqrt((flows ** 2).sum(-1)).max())}
