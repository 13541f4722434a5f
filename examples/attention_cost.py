"""The cost of joint against factorized space-time attention, counted (the table in docs/attention.md).

    python examples/attention_cost.py [--frames 8] [--side 14] [--width 768] [--heads 12]

For T frames of S = side^2 patches and a token width D, per clip and per transformer block:
  - attention scores (query-key pairs), summed over heads: joint (T*S)^2 * heads, divided
    (S*T^2 + T*S^2) * heads, and what they cost in multiply-adds (QK^T and PV: 2 * pairs * D / heads
    each head, so 2 * pairs_per_head * D over all heads);
  - the multiply-adds of the rest of the block, which factorizing does not shrink: the query/key/
    value/output projections (4 D^2 per token for each attention) and the MLP (8 D^2 per token);
  - the float32 memory of one block's attention probabilities for all heads.
The class token is left out (it adds one row and column).
"""
import argparse


def costs(T, S, D, heads):
    tokens = T * S
    pairs = {'joint': tokens ** 2, 'divided (TimeSformer)': S * T ** 2 + T * S ** 2,
             'space only': T * S ** 2}
    # projections: q, k, v, out (4 D^2 per token) per attention; divided also has temporal_fc (D^2)
    projections = {'joint': 4 * D * D, 'divided (TimeSformer)': 2 * 4 * D * D + D * D,
                   'space only': 4 * D * D}
    mlp = 8 * D * D
    rows = []
    for kind, p in pairs.items():
        attn_macs = 2 * p * D                       # QK^T and PV over all heads
        rest = tokens * (projections[kind] + mlp)
        rows.append((kind, p, attn_macs, rest, p * heads * 4))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--frames', type=int, default=8)
    ap.add_argument('--side', type=int, default=14)
    ap.add_argument('--width', type=int, default=768)
    ap.add_argument('--heads', type=int, default=12)
    a = ap.parse_args()
    T, S, D = a.frames, a.side ** 2, a.width
    print(f"T = {T} frames x S = {S} patches = {T * S} tokens, width {D}, {a.heads} heads; "
          "per clip, per block\n")
    print(f"{'attention':22s} {'pairs/head':>12s} {'attn GMAC':>10s} {'rest GMAC':>10s} "
          f"{'block GMAC':>11s} {'probs MiB':>10s}")
    rows = costs(T, S, D, a.heads)
    for kind, pairs, attn, rest, nbytes in rows:
        print(f"{kind:22s} {pairs:12,d} {attn / 1e9:10.2f} {rest / 1e9:10.2f} "
              f"{(attn + rest) / 1e9:11.2f} {nbytes / 2**20:10.1f}")
    joint, divided = rows[0], rows[1]
    print(f"\njoint / divided: {joint[1] / divided[1]:.2f}x the score pairs, "
          f"{(joint[2] + joint[3]) / (divided[2] + divided[3]):.2f}x the block's multiply-adds")


if __name__ == '__main__':
    main()
