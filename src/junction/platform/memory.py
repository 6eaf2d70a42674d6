"""Keeping the garbage collector off the objects a process loads once at start."""

from __future__ import annotations

import functools
import gc


@functools.cache
def freeze_startup_objects() -> None:
    """Exclude every object alive now from future collections; once per process.

    Modules, classes, functions, routes and settings live as long as the process, yet
    each full collection walks them all: about 200,000 objects, 150 ms a collection on a
    busy 2-core machine, which alone set the p99 of cached reads (bench/events_api.py).
    ``gc.freeze`` exists for this; objects created later are collected as before (a
    process that starts several apps, as the tests do, freezes only the first time).
    """
    gc.collect()
    gc.freeze()
