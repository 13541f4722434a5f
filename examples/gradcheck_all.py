"""Gradient-check every differentiable op of tensorlite in float64 and print a table.

    python examples/gradcheck_all.py            # all ops
    python examples/gradcheck_all.py gelu pad   # only ops whose name contains one of the words

For each op: the full-Jacobian gradcheck, the fast (random-projection) gradcheck and gradgradcheck
(second derivatives), with the worst relative disagreement between backward and central differences
that the full check saw.  Exits with status 1 if any check fails.  'n/a' under 2nd marks the ops
whose fused backward has no second derivative and says so (NotImplementedError): the whole-sequence
lstm/gru and the blockwise attention path.

The ops and the runner live in tensorlite/gradcheck_suite.py (also `tensorlite gradcheck [WORDS]`).
"""
import sys

from tensorlite.gradcheck_suite import format_footer, format_header, format_row, run_suite


def main(words):
    print(format_header())

    def show(row):
        for message in row['errors']:
            print(f"  {row['op']}: {message}", file=sys.stderr)
        print(format_row(row), flush=True)

    rows = run_suite(words, on_row=show)
    print(format_footer(rows))
    return 1 if any(row['failed'] for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
