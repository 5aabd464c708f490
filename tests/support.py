"""Loopback helpers for tests (they live in :mod:`simulator.support`, which the simulator uses too)."""

from simulator.support import free_port, stop_process, wait_for_port

__all__ = ["free_port", "stop_process", "wait_for_port"]
