"""Exception tree for the market-data feed adapters.

Every error a feed adapter raises on bad *input data* is a subclass of `FeedError`, so
the shell can catch one type at the boundary. Third-party errors (JSON decoding, gzip,
`decimal`) are translated here with ``raise ... from exc``. Assertion failures are not
part of this tree: they mean a bug in Bastion, not bad data.

    FeedError
    ├── FeedFormatError        malformed line, JSON, number text, unknown stream
    │   └── SymbolMismatchError  a record for a symbol the reader was not configured for
    ├── OffGridError           a decimal value that is not a whole multiple of its step
    └── FeedOrderError         records out of time order / duplicated (bars)
"""

from __future__ import annotations

__all__ = [
    "FeedError",
    "FeedFormatError",
    "FeedOrderError",
    "OffGridError",
    "SymbolMismatchError",
]


class FeedError(Exception):
    """Base class of every data error raised by `bastion.feeds`."""


class FeedFormatError(FeedError):
    """The input is not in the documented wire format (bad line, JSON, number text)."""


class SymbolMismatchError(FeedFormatError):
    """A record names a symbol other than the one the reader was configured for."""


class OffGridError(FeedError):
    """A decimal value is not an exact multiple of its grid step; it is never rounded.

    Attributes:
        field: which field held the value (e.g. ``"price"``, ``"qty"``).
        text: the value exactly as it appeared on the wire.
        step: the grid step (tick or lot size) as a decimal string.
    """

    def __init__(self, field: str, text: str, step: str) -> None:
        super().__init__(f"{field}={text!r} is not a multiple of step {step}")
        self.field = field
        self.text = text
        self.step = step


class FeedOrderError(FeedError):
    """Records arrived out of time order, or a timestamp was duplicated."""
