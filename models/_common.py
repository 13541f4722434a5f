"""What every model shares: the input check."""


def check_clip(model, x, channels=3, frames=None, min_size=None, size=None):
    """x must be a batch of clips (N, C, T, H, W) with C = channels, T = frames when the model fixes
    it (position embeddings, an early-fusion first conv) and (H, W) = size when it fixes that (a
    flatten into a fully connected layer, position embeddings); else a ValueError naming the
    expected shape and what came.  size: an int (square frames) or (H, W)."""
    t = 'T' if frames is None else frames
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
    hw = 'H, W' if size is None else f'{size[0]}, {size[1]}'
    expected = f"(N, {channels}, {t}, {hw})"
    if x.ndim != 5:
        raise ValueError(f"{model}: expected a batch of clips {expected}, got a {x.ndim}-D input "
                         f"of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{model}: expected {channels} channels, input {expected}, got shape "
                         f"{tuple(x.shape)}")
    if frames is not None and x.shape[2] != frames:
        raise ValueError(f"{model}: this model is built for {frames} frames, input {expected}, "
                         f"got shape {tuple(x.shape)}")
    if min_size is not None and min(x.shape[3:]) < min_size:
        raise ValueError(f"{model}: frames must be at least {min_size}x{min_size}, input "
                         f"{expected}, got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[3:]) != size:
        raise ValueError(f"{model}: this model is built for {size[0]}x{size[1]} frames, input "
                         f"{expected}, got shape {tuple(x.shape)}")
