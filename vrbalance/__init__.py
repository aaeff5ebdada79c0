"""vrbalance: a virtual-reality balance-training simulator for clinics.

The package is layered (see ``DESIGN.md`` in the shared folder and the README):
``balance`` is the pure numerical core; ``realtime``, ``devices``, ``director``,
``sessions``, ``world`` and ``xr`` depend inward on it, never the reverse.
"""

import logging

__version__ = "0.1.0"

# A library adds only a NullHandler; the application (cli) configures output.
logging.getLogger(__name__).addHandler(logging.NullHandler())
