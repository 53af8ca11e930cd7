"""pageext client distribution: debug_pagealloc."""
__version__ = "0.1.0"
