"""What every model shares: the input check."""


def check_clip(model, x, channels=3, frames=None, min_size=None):
    """x must be a batch of clips (N, C, T, H, W) with C = channels (and T = frames when the model
    fixes it); else a ValueError naming the expected shape and what came."""
    expected = f"(N, {channels}, {'T' if frames is None else frames}, H, W)"
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
