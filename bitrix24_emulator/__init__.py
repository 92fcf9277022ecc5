"""A local Bitrix24 cloud portal (REST v2) for tests, benchmarks and the demo: `Portal`, `python -m`."""

from .portal import Portal

__all__ = ["Portal"]
