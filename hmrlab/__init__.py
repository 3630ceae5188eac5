"""hmrlab: small, readable reference implementations for 3D human mesh recovery and pose estimation.

Modules are named after the mechanism they implement (`geometry`, `metrics`, `backbones`, ...);
notebooks in `notebooks/` teach them one at a time.
"""

from hmrlab.runtime import describe_device, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["describe_device", "get_device", "seed_everything", "__version__"]
