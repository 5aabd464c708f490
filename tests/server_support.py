"""Tests start gunicorn with :class:`simulator.server.GunicornServer` (re-exported here)."""

from simulator.server import ROOT, GunicornServer

__all__ = ["ROOT", "GunicornServer"]
