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
