"""Suite-wide settings: plugins load strictly, as the issue asks of the test suite.

A plugin that cannot be loaded fails the boot instead of being logged and
skipped; tests that exercise the lenient behaviour pass ``strict=False``.
"""
import os

os.environ["PAGEEXT_STRICT"] = "1"
