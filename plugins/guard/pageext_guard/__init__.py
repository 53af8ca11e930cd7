"""pageext client distribution: guard."""
__version__ = "0.1.0"
