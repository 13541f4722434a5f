"""`tensorlite.data` (import as D): video decoding, temporal samplers, clip transforms, the data
loader and its DistributedSampler, synthetic action datasets and optical flow.

    import tensorlite.data as D
    frames, info = D.read_video('clip.mp4', frames=D.UniformStride(16, 2)(D.video_info('clip.mp4').num_frames))
    data = D.SyntheticActions('order', num_clips=512)           # clip (3, 16, 32, 32), label
    for clips, labels in D.DataLoader(data, batch_size=32, shuffle=True, seed=0): ...

docs/data.md explains the sampling strategies, the synthetic families and the flow method.
"""
from .datasets import VideoFolder, VideoList  # noqa: F401
from .distributed_sampler import DistributedSampler  # noqa: F401
from .flow import (FlowCache, clip_flows, flow_params, flow_stack, flow_to_color,  # noqa: F401
                   flows_to_stack, luminance, middlebury_colorwheel, optical_flow)
from .io import VideoInfo, VideoReadError, read_video, video_info, write_video  # noqa: F401
from .loader import DataLoader, DataLoaderError, default_collate  # noqa: F401
from .samplers import (MultiClip, RandomTemporalCrop, SegmentSampler, TwoRate,  # noqa: F401
                       UniformStride, sample_generator, using_generator)
from .scale import ClipNumbers, clip_numbers  # noqa: F401
from .subset import Relabelled, Subset, random_split, stratified_split  # noqa: F401
from .synthetic import SyntheticActions  # noqa: F401
from .twostream import WithFlowStack, centred_flow_stack  # noqa: F401
from .transforms import (CenterCrop, Compose, Normalize, RandomHorizontalFlip,  # noqa: F401
                         RandomResizedCrop, Resize, ToTensor)
