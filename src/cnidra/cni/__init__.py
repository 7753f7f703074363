"""The CNI runtime (our libcni): conflist load/validate, plugin exec for
ADD/CHECK/DEL/STATUS/GC/VERSION, result parsing and version conversion, libcni-compatible result
cache. Async; never blocks the event loop.
"""
