"""The whole-system demo (``hub demo``): real CGMES and GasLib models joined by couplings, published by
several producers under different labels, with a live feed of changes.
See :mod:`devstack.demo.orchestrator`."""
