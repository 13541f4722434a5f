"""Support for testing tensorlite without the hardware it targets.

`tensorlite.testing.simcupy` is the NumPy-backed stand-in for CuPy that device 'cuda' uses when
`TENSORLITE_SIMULATE_CUDA=1` is set (see docs/gpu.md).  Nothing outside tests and that flag imports it.
"""
