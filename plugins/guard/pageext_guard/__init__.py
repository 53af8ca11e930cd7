"""pageext client distribution: guard pages around allocations (``debug_guardpage_minorder``)."""
from pageext_guard.plugin import Guard

__version__ = "0.1.0"
__all__ = ["Guard", "__version__"]
