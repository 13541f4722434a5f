"""The profiler that is recording, if any: a `tensorlite.profiler.profile` or
`observe_forwards`, which set it.  It has `record_forward`, `record_backward` and `kernel_twin`.

It lives at the bottom of the house so that the layers that report to it -- kernels (every twin
launch), autograd (every Function forward and backward) -- need not import the profiler, which
sits above them.  None when nothing records: each report site then costs one global lookup.
"""
active = None
