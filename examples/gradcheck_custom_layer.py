"""How to write a new differentiable op in tensorlite, check its gradients, and use it in a model.

    python examples/gradcheck_custom_layer.py           # checks, then a few training steps
    python examples/gradcheck_custom_layer.py --steps 50
    python examples/gradcheck_custom_layer.py --quick   # fewer steps (the smoke test)

The op is Swish with a learnable slope per channel (Ramachandran et al. 2017),

    y = x * sigmoid(beta_c * x)       x (N, C, ...), beta (C,)

    dy/dx    = s + beta x s (1 - s)    with s = sigmoid(beta x)
    dy/dbeta = x^2 s (1 - s)           summed over every axis but the channel axis

beta = 1 is SiLU; beta -> 0 gives x / 2 (linear); large beta approaches ReLU.

What the script shows, in order:

1. `Swish(tl.Function)`: `forward(ctx, x, beta)` works on raw NumPy arrays and saves the two
   inputs with `ctx.save_for_backward`; `backward(ctx, grad_y)` gets Tensors back
   (`ctx.saved_tensors`) and computes the gradients with Tensor ops, so that they are
   differentiable in turn (second derivatives, `backward(create_graph=True)`). It returns one
   gradient per forward argument, None where `ctx.needs_input_grad` says nobody asked.
2. The op against the same expression written with tensorlite's own ops: values and gradients.
3. `tl.gradcheck` (first derivatives, full Jacobian and fast random-projection mode) and
   `tl.gradgradcheck` (second derivatives) in float64, where central differences are accurate.
4. A deliberately wrong backward (dy/dx without its beta factor: s + x s (1 - s)), a mistake that
   is invisible at beta = 1, where SiLU's derivative is right: gradcheck at random betas catches it
   and its error message names the input, the element and both values.
5. `LearnableSwish(nn.Module)` holds beta as a Parameter and calls the op; a tiny 3D CNN using it
   trains for a few steps on synthetic 'scene' clips (the class is the background, so a few steps
   suffice to see the loss fall), and the betas move.
"""
import argparse
import time

import numpy as np

import tensorlite as tl
import tensorlite.data as D
import tensorlite.functional as F
import tensorlite.nn as nn
import tensorlite.optim as optim
from tensorlite.utils import write_json


# ---- 1. the op --------------------------------------------------------------------------------

def _channel_shape(beta, ndim):
    """Shape that broadcasts a (C,) per-channel vector against (N, C, ...) with `ndim` dims."""
    return (1, beta.shape[0]) + (1,) * (ndim - 2)


class Swish(tl.Function):
    """y = x * sigmoid(beta * x), beta (C,) broadcast over the channel axis 1 of x (N, C, ...)."""

    @staticmethod
    def forward(ctx, x, beta):
        if x.ndim < 2 or beta.ndim != 1 or beta.shape[0] != x.shape[1]:
            raise ValueError(f"swish expects x (N, C, ...) and beta (C,), got x {x.shape} and "
                             f"beta {beta.shape}")
        z = beta.reshape(_channel_shape(beta, x.ndim)) * x
        s = 0.5 * np.tanh(0.5 * z) + 0.5            # sigmoid without overflow for large |z|
        # save the inputs, not s: an input comes back in backward as the graph's own Tensor, so
        # the gradient expression below can be differentiated again; a saved s would come back
        # as a constant and the second derivative would silently miss its dependence on x
        ctx.save_for_backward(x, beta)
        return x * s

    @staticmethod
    def backward(ctx, grad_y):                       # Tensors in, Tensors out
        x, beta = ctx.saved_tensors
        b = beta.reshape(_channel_shape(beta, x.ndim))
        s = F.sigmoid(b * x)
        ds = s * (1 - s)                              # sigmoid'(z)
        grad_x = grad_y * (s + b * x * ds) if ctx.needs_input_grad[0] else None
        grad_beta = None
        if ctx.needs_input_grad[1]:
            axes = (0,) + tuple(range(2, x.ndim))     # every axis but the channels
            grad_beta = (grad_y * x * x * ds).sum(axes)
        return grad_x, grad_beta


def swish(x, beta):
    """Swish with a per-channel slope: x (N, C, ...), beta (C,) -> (N, C, ...)."""
    return Swish.apply(x, beta)


def swish_reference(x, beta):
    """The same function from tensorlite's built-in ops, whose gradients autograd derives."""
    return x * F.sigmoid(beta.reshape(_channel_shape(beta, x.ndim)) * x)


# ---- 4. the same op with a wrong backward -----------------------------------------------------

class SwishWithoutBeta(Swish):
    """Swish whose backward forgets the factor beta in dy/dx: right only where beta = 1."""

    @staticmethod
    def backward(ctx, grad_y):
        x, beta = ctx.saved_tensors
        b = beta.reshape(_channel_shape(beta, x.ndim))
        s = F.sigmoid(b * x)
        ds = s * (1 - s)
        axes = (0,) + tuple(range(2, x.ndim))
        return grad_y * (s + x * ds), (grad_y * x * x * ds).sum(axes)     # the bug: x, not b * x


# ---- 5. the layer and a model that uses it ------------------------------------------------------

class LearnableSwish(nn.Module):
    """Swish with one learnable slope per channel, initialised to 1 (SiLU)."""

    def __init__(self, num_channels):
        super().__init__()
        self.beta = nn.Parameter(tl.ones(num_channels))

    def forward(self, x):
        return swish(x, self.beta)

    def extra_repr(self):
        return f'num_channels={self.beta.shape[0]}'


def tiny_model(num_classes, width=8):
    """(N, 3, T, H, W) clips -> (N, num_classes) logits: two 3D convs with LearnableSwish."""
    return nn.Sequential(
        nn.Conv3d(3, width, 3, padding=1), LearnableSwish(width),
        nn.Conv3d(width, 2 * width, 3, stride=2, padding=1), LearnableSwish(2 * width),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))


# ---- the walk-through ----------------------------------------------------------------------------

def compare_with_reference(rng):
    """Max |difference| of values and of both gradients between Swish and swish_reference."""
    x_data = rng.standard_normal((2, 3, 4, 5))
    beta_data = rng.uniform(0.2, 2.0, 3)
    grad_y = tl.tensor(rng.standard_normal(x_data.shape))
    results = []
    for fn in (swish, swish_reference):
        x = tl.tensor(x_data, requires_grad=True)
        beta = tl.tensor(beta_data, requires_grad=True)
        y = fn(x, beta)
        y.backward(grad_y)
        results.append((y.numpy(), x.grad.numpy(), beta.grad.numpy()))
    return {name: float(np.abs(a - b).max())
            for name, a, b in zip(('value', 'grad_x', 'grad_beta'), *results)}


def run_checks(rng):
    """gradcheck (full and fast) and gradgradcheck of Swish in float64; returns their results."""
    x = tl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)      # float64
    beta = tl.tensor(rng.uniform(0.2, 2.0, 3), requires_grad=True)
    return {'gradcheck': tl.gradcheck(swish, (x, beta)),
            'gradcheck_fast': tl.gradcheck(swish, (x, beta), fast_mode=True),
            'gradgradcheck': tl.gradgradcheck(swish, (x, beta))}


def catch_wrong_backward(rng):
    """(passes at beta = 1, error message at random betas) for SwishWithoutBeta."""
    x = tl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    ones = tl.tensor(np.ones(3), requires_grad=True)
    passes_at_one = tl.gradcheck(SwishWithoutBeta.apply, (x, ones))
    beta = tl.tensor(rng.uniform(0.2, 2.0, 3), requires_grad=True)
    try:
        tl.gradcheck(SwishWithoutBeta.apply, (x, beta))
    except tl.GradcheckError as err:
        return passes_at_one, str(err)
    return passes_at_one, None


def train_tiny_model(args):
    """A few Adam steps of tiny_model on 'scene' clips; returns (losses, betas after training)."""
    tl.manual_seed(args.seed)
    data = D.SyntheticActions('scene', args.steps * args.batch_size, num_frames=args.frames,
                              seed=args.seed)
    loader = D.DataLoader(data, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    model = tiny_model(data.num_classes)
    swishes = [m for m in model.modules() if isinstance(m, LearnableSwish)]
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    losses = []
    for step, (clips, labels) in enumerate(loader):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(clips), labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
        if step == 0 or (step + 1) % max(1, args.steps // 5) == 0 or step + 1 == args.steps:
            print(f"  step {step + 1:3d}: loss {losses[-1]:.4f}")
    betas = [m.beta.numpy().copy() for m in swishes]
    return losses, betas


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=30, help='training steps (default 30)')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--frames', type=int, default=8, help='frames per clip (default 8)')
    ap.add_argument('--lr', type=float, default=1e-2, help='Adam learning rate (default 1e-2)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', metavar='PATH', help='also write the results to this JSON file')
    ap.add_argument('--quick', action='store_true', help='3 training steps (the smoke test)')
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 3
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    print("1-2. Swish(tl.Function) against the same expression from built-in ops (float64):")
    reference = compare_with_reference(rng)
    print("  max |difference|: " + ', '.join(f"{k} {v:.3g}" for k, v in reference.items()))

    print("3. gradient checks in float64:")
    checks = run_checks(rng)
    for name, ok in checks.items():
        print(f"  tl.{name.replace('_fast', '')}{' (fast_mode=True)' if 'fast' in name else ''}: "
              f"{'passed' if ok else 'FAILED'}")

    print("4. a wrong backward (dy/dx = s + x s (1 - s), the factor beta forgotten):")
    passes_at_one, message = catch_wrong_backward(rng)
    print("  at beta = 1 gradcheck " + ('passes: the bug is invisible there' if passes_at_one
                                        else 'fails'))
    if message is None:
        print("  at random betas gradcheck did NOT catch it")
    else:
        print(f"  at random betas tl.GradcheckError:\n    {message}")

    print(f"5. a tiny 3D CNN with LearnableSwish, {args.steps} Adam steps on 'scene' clips:")
    losses, betas = train_tiny_model(args)
    for k, b in enumerate(betas):
        print(f"  swish {k} beta after training: mean {b.mean():.3f}, min {b.min():.3f}, "
              f"max {b.max():.3f} (all 1 at the start)")
    seconds = time.perf_counter() - started
    print(f"done in {seconds:.1f} s")

    results = {'reference_max_difference': reference, 'checks': checks,
               'wrong_backward_passes_at_beta_1': passes_at_one,
               'wrong_backward_error': message, 'losses': losses,
               'betas': [b.tolist() for b in betas], 'seconds': seconds}
    if args.json:
        write_json(args.json, results)   # atomic, parent folder created
    return results


if __name__ == '__main__':
    main()
