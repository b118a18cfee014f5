"""Feed adapters (shell): real market data and oracle sources turned into typed integer records.

* :mod:`bastion.feeds.binance` — Binance raw websocket captures (REST snapshot + depth diffs synced with
  U/u/pu as Binance documents, trades, bookTicker) for USD-M, COIN-M and Spot.
* :mod:`bastion.feeds.book` — a local order book that applies those records.
* :mod:`bastion.feeds.inverse` — COIN-M inverse-contract conversions.
* :mod:`bastion.feeds.bars` — 1-minute multi-source OHLCV bars.
* :mod:`bastion.feeds.oracle_reports` — Ed25519-signed oracle price reports.

Decimal strings are converted exactly against the instrument grid; off-grid values raise
:class:`~bastion.feeds.errors.OffGridError` and are never rounded.
"""

from bastion.feeds.errors import FeedError, FeedFormatError, FeedOrderError, OffGridError

__all__ = ["FeedError", "FeedFormatError", "FeedOrderError", "OffGridError"]
