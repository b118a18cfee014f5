"""Bastion: a security-first, deterministic, verifiable derivatives exchange core.

The pure state machine lives in :mod:`bastion.core` (integers only, no clock, no I/O); the input journal
in :mod:`bastion.journal`; the Merkle transparency log and checkpoints in :mod:`bastion.audit`; feed
adapters in :mod:`bastion.feeds`; simulations in :mod:`bastion.sim`; the venue process (sequencer +
journal + engine) in :mod:`bastion.venue`; the command line in :mod:`bastion.cli`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
