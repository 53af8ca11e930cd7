"""pageext client distribution: page_owner."""
__version__ = "0.1.0"
