"""pageext: a simulated physical memory with Linux's page_ext debug framework."""
__version__ = "0.1.0"
