"""Differentiable operations, one Function per op (import as F).

    import tensorlite.functional as F
    y = F.gelu(F.linear(x, w, b))
"""
from .activation import (erf, gelu, leaky_relu, log_softmax, relu, relu_, sigmoid,  # noqa: F401
                         silu, softmax, softplus, tanh)
from .arithmetic import (abs, add, clamp, clip, div, exp, log, masked_fill, maximum, minimum,  # noqa: F401
                         mul, neg, pow, reciprocal, sqrt, sub, where)
from .attention import scaled_dot_product_attention  # noqa: F401
from .conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,  # noqa: F401
                   conv_transpose3d)
from .dropout import dropout  # noqa: F401
from .linalg import einsum, linear, matmul  # noqa: F401
from .loss import (binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,  # noqa: F401
                   nll_loss)
from .normalization import batch_norm, group_norm, layer_norm  # noqa: F401
from .pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,  # noqa: F401
                   adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d, avg_pool1d,
                   avg_pool2d, avg_pool3d, interpolate, max_pool1d, max_pool2d, max_pool3d)
from .recurrent import gru, gru_cell, lstm, lstm_cell  # noqa: F401
from .reduction import (argmax, argmin, logsumexp, max, mean, min, std, sum, var)  # noqa: F401
from .spacetime import (divided_space_time_attention, factorized_dot_product_attention,  # noqa: F401
                        factorized_self_attention, joint_space_time_attention, spatial_attention,
                        temporal_attention)
from .sparse import embedding, one_hot  # noqa: F401
from .shape import (broadcast_to, cast, cat, chunk, clone, concatenate, expand, flatten,  # noqa: F401
                    gather, getitem, index_put, pad, permute, repeat, reshape, split, squeeze,
                    stack, sum_to, to_device, transpose, unsqueeze, view)
