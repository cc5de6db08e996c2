"""The lowest layer: what every other package needs and nothing above it provides.

``core`` <- ``datasets`` <- ``methods`` <- ``benchmarks``: imports run one way only (``tests/test_layers.py``).
Here: the name registry (:mod:`core.registry`), content keys and the artifact store with its sharded artifacts
(:mod:`core.artifacts`), progress bars and lines (:mod:`core.progress`), the score registry (:mod:`core.scores`)
and small torch helpers (:mod:`core.torch_utils`). It imports torch and the standard library only.
"""
