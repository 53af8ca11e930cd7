"""The kit's own tests use pytest's pytester to run pytest the way a plugin author would."""
pytest_plugins = ["pytester"]
