"""Two-stream inputs: a clip dataset whose items also carry the temporal stream's flow stack.

    data = WithFlowStack(D.SyntheticActions('motion', 512), flow_length=10)
    clip, flow, label = data[0]        # (3, T, H, W), (2L, H, W) float32, label
    model = build_model('two_stream', num_classes=4)
    for clips, flows, labels in D.DataLoader(data, batch_size=32): model(clips, flows)

The flow is computed from the clip itself (hand-written Farnebaeck, tensorlite.data.flow), so
whatever was done to the frames (reversing, shuffling, cropping) is seen by the flow too.  The
stack holds the L flows of the L + 1 frames centred in the clip (Simonyan & Zisserman sample
one stack per clip; at test time they average 25 of them, which this wrapper does not do).
"""
import numpy as np

from .flow import clip_flows, flows_to_stack


def clip_to_frames(clip, name='clip'):
    """A (C, T, H, W) float clip in [0, 1] (C = 1 or 3) -> (T, H, W, C) float32 frames."""
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[0] not in (1, 3) or clip.dtype.kind != 'f':
        raise ValueError(f"WithFlowStack: {name} must be a float (C, T, H, W) array with C = 1 or "
                         f"3 and values in [0, 1] (un-normalized), got {clip.dtype} "
                         f"shape {clip.shape}")
    return np.ascontiguousarray(np.moveaxis(clip, 0, -1), dtype=np.float32)


def centred_flow_stack(clip, flow_length, subtract_mean=False, **flow_params):
    """(C, T, H, W) float clip in [0, 1] -> (2L, H, W) float32: the flows of the L + 1 frames
    centred in the clip, stacked dx_0, dy_0, dx_1, ... (see flows_to_stack)."""
    frames = clip_to_frames(clip)
    T = frames.shape[0]
    if T < flow_length + 1:
        raise ValueError(f"WithFlowStack: a stack of L = {flow_length} flows needs {flow_length + 1} "
                         f"frames, the clip has {T}")
    start = (T - 1 - flow_length) // 2
    flows = clip_flows(frames[start:start + flow_length + 1], **flow_params)
    return flows_to_stack(flows, 0, flow_length, subtract_mean)


class WithFlowStack:
    """Wrap a dataset of (clip, target) items into (clip, flow_stack, target) items.

    dataset: items (clip (C, T, H, W) float in [0, 1], target), e.g. SyntheticActions without a
        transform, or VideoFolder with ToTensor but no Normalize (flow is computed on luminance in
        [0, 255]; normalize afterwards if the model wants it).
    flow_length: L, the number of flows in the stack (2L channels); the clip needs T >= L + 1.
    subtract_mean: subtract each flow channel's mean (Simonyan & Zisserman's camera-motion
        compensation).
    flow_params: Farnebaeck settings passed to clip_flows (tensorlite.data.flow.flow_params).
    """

    def __init__(self, dataset, flow_length=10, subtract_mean=False, **flow_params):
        if isinstance(flow_length, bool) or not isinstance(flow_length, (int, np.integer)) \
                or flow_length < 1:
            raise ValueError(f"WithFlowStack: flow_length must be an int >= 1, got {flow_length!r}")
        self.dataset = dataset
        self.flow_length = int(flow_length)
        self.subtract_mean = bool(subtract_mean)
        self.flow_params = flow_params
        for name in ('classes', 'num_classes', 'chance', 'family'):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = self.dataset[index]
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValueError(f"WithFlowStack: the dataset's items must be (clip, target) pairs, "
                             f"item {index} is a {type(item).__name__}"
                             + (f" of length {len(item)}" if isinstance(item, tuple) else ''))
        clip, target = item
        flow = centred_flow_stack(clip, self.flow_length, self.subtract_mean, **self.flow_params)
        return clip, flow, target

    def __repr__(self):
        return f"WithFlowStack({self.dataset!r}, flow_length={self.flow_length})"
