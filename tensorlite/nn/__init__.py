"""`tensorlite.nn`: Module, Parameter and the layers, with PyTorch's names, parameter layouts,
state-dict keys and default initialization.

    import tensorlite.nn as nn
    net = nn.Sequential(nn.Conv3d(3, 64, 3, padding=1), nn.BatchNorm3d(64), nn.ReLU())
"""
from .. import functional  # noqa: F401  (nn.functional, as torch.nn.functional)
from . import init  # noqa: F401
from . import parallel  # noqa: F401  (nn.parallel.DistributedDataParallel)
from . import utils  # noqa: F401
from .activation import (GELU, Dropout, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU,  # noqa: F401
                         Softmax, Softplus, Tanh)
from .attention import MultiheadAttention  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,  # noqa: F401
                   ConvTranspose3d)
from .linear import Embedding, Flatten, Identity, Linear  # noqa: F401
from .local_response_norm import LocalResponseNorm  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss  # noqa: F401
from .module import Module, Parameter  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm  # noqa: F401
from .sync_batch_norm import SyncBatchNorm  # noqa: F401
from .spacetime import (DividedSpaceTimeAttention, FactorizedDotProductAttention,  # noqa: F401
                        FactorizedSelfAttention, JointSpaceTimeAttention)
from .rnn import GRU, LSTM, GRUCell, LSTMCell  # noqa: F401
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,  # noqa: F401
                      AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d,
                      AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d)
