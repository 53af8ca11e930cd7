"""Pictures of a run: the memory map, fragmentation over time, flame graphs and the run's HTML page.

Nothing here imports matplotlib at import time: each drawing function
imports it when called (see ``_mpl``), so sessions without pictures start
as fast as before.
"""
