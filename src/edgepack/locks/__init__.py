"""Locks that survive a moving mirror: the package store, sources in order, drift and refresh.

* ``store``: .deb and wheel files by sha256, outside the clone, shared by all.
* ``sources``: fetch a locked file from the store, the mirrors, then the snapshot archive.
* ``drift``: the build's lock policy (cargo's and uv's): use the lock as it is;
  re-resolve only the entries no source serves any more, show and record the
  drift, rewrite the lock; ``--locked`` refuses instead.
* ``catalog``: which locks a target uses, and ``edgepack lock`` (refresh them all).
"""
