"""Errors raised by the relay's control calls."""

from __future__ import annotations


class MediaError(Exception):
    """A control call could not be carried out (bad argument, unknown endpoint, closed relay)."""


class PortRangeExhausted(MediaError):
    """No even RTP port with a free RTP+1 was left in the configured range."""


class DescriptorsExhausted(MediaError):
    """The process may open no more sockets (RLIMIT_NOFILE, or the system's file table)."""
