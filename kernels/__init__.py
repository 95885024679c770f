"""Private numba kernels of rxrisk: arrays and scalars in, arrays out.

Nothing here validates input, raises user-facing errors or imports from ``rxrisk``;
the public wrappers in ``src/rxrisk`` own that.
"""
