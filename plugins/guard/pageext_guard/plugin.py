"""The guard page_ext client (registered in the ``pageext.clients`` entry-point group)."""
