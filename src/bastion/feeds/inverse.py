"""COIN-M (inverse) contract arithmetic, integer only, with explicit rounding.

A Binance COIN-M contract such as BTCUSD_PERP has a fixed USD face value
(``Instrument.contract_size_usd`` = 100 USD) and is margined and settled in the *base*
coin. Therefore:

* notional in USD is exact: ``contracts * 100 USD``;
* base-asset quantity depends on price: ``contracts * 100 / price`` BTC, generally not a
  whole number of satoshis, so callers choose the rounding;
* PnL is in BTC, not USD: long ``Q`` contracts from entry ``Pe`` to exit ``Px`` earns
  ``Q * 100 * (1/Pe - 1/Px)`` BTC (Binance COIN-M "Contract Specifications" / inverse
  futures PnL formula; e.g. 100 contracts long 10,000 -> 11,000 earn 0.0909… BTC).

Prices arrive as ``price_ticks`` on the instrument grid (tick 0.1 USD); with
``tick_size = n/d`` (exact rational from `Decimal.as_integer_ratio`) every formula is a
single integer fraction, rounded once at the end by `div_round`.

The COIN-M mid price is also exposed as a USD index source (`IndexPrice`, USD cents).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from typing import Final

from bastion.feeds.binance import BookTicker, FeedRecord, Instrument, Market
from bastion.feeds.book import LocalBook
from bastion.feeds.errors import OffGridError

__all__ = [
    "INDEX_PRICE_EXPONENT",
    "SATS_PER_BTC",
    "IndexPrice",
    "Rounding",
    "contracts_to_base_sats",
    "contracts_to_notional_usd_cents",
    "div_round",
    "inverse_pnl_sats",
    "iter_coinm_index",
    "mid_price_usd_cents",
    "mid_price_usd_cents_from_book",
]

SATS_PER_BTC: Final = 100_000_000
CENTS_PER_USD: Final = 100
INDEX_PRICE_EXPONENT: Final = -2
"""`IndexPrice.price_usd_cents` is ``price * 10**-2`` USD (oracle ``SourcePrice`` exponent)."""


class Rounding(enum.Enum):
    """How an exact rational result is turned into an integer."""

    FLOOR = "floor"  # toward -infinity
    CEIL = "ceil"  # toward +infinity
    HALF_EVEN = "half_even"  # nearest, ties to even (banker's rounding)


def div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Exact ``numerator / denominator`` rounded once as ``rounding`` says.

    Args:
        numerator: any int.
        denominator: non-zero int (sign is normalised).

    Returns:
        The rounded quotient.
    """
    assert denominator != 0
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)  # floor division, 0 <= r < d
    assert 0 <= remainder < denominator
    if remainder == 0 or rounding is Rounding.FLOOR:
        return quotient
    if rounding is Rounding.CEIL:
        return quotient + 1
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def _tick_ratio(instrument: Instrument) -> tuple[int, int]:
    assert instrument.market is Market.COINM and instrument.contract_size_usd > 0, instrument
    tick_num, tick_den = instrument.grid.tick_size.as_integer_ratio()
    assert tick_num > 0 and tick_den > 0
    return tick_num, tick_den


def contracts_to_notional_usd_cents(contracts: int, instrument: Instrument) -> int:
    """USD notional of ``contracts`` (signed), exact: ``contracts * contract_size_usd``, in cents."""
    _tick_ratio(instrument)
    return contracts * instrument.contract_size_usd * CENTS_PER_USD


def contracts_to_base_sats(
    contracts: int, price_ticks: int, instrument: Instrument, rounding: Rounding = Rounding.FLOOR
) -> int:
    """Base-coin quantity of ``contracts`` at ``price_ticks``: ``contracts * size_usd / price``.

    Args:
        contracts: signed contract count (lots of the COIN-M grid).
        price_ticks: price on the instrument grid, > 0.
        instrument: a COIN-M instrument.
        rounding: applied once to the exact satoshi fraction. FLOOR (default) never
            overstates a positive quantity.

    Returns:
        Satoshis (1e-8 BTC), signed like ``contracts``.
    """
    assert price_ticks > 0
    tick_num, tick_den = _tick_ratio(instrument)
    numerator = contracts * instrument.contract_size_usd * SATS_PER_BTC * tick_den
    return div_round(numerator, price_ticks * tick_num, rounding)


def inverse_pnl_sats(
    contracts: int,
    entry_price_ticks: int,
    exit_price_ticks: int,
    instrument: Instrument,
    rounding: Rounding = Rounding.FLOOR,
) -> int:
    """PnL in satoshis of an inverse position: ``contracts * size_usd * (1/entry - 1/exit)``.

    Args:
        contracts: signed position (> 0 long, < 0 short).
        entry_price_ticks: average entry price on the grid, > 0.
        exit_price_ticks: exit / mark price on the grid, > 0.
        instrument: a COIN-M instrument.
        rounding: applied once to the exact result. FLOOR (default) never overstates a
            profit and rounds a loss away from zero -- the conservative choice for margin.

    Returns:
        PnL in satoshis (BTC, not USD).
    """
    assert entry_price_ticks > 0 and exit_price_ticks > 0
    tick_num, tick_den = _tick_ratio(instrument)
    # size * (1/(e*n/d) - 1/(x*n/d)) = size * d * (x - e) / (n * e * x)
    size_sats = contracts * instrument.contract_size_usd * SATS_PER_BTC
    numerator = size_sats * tick_den * (exit_price_ticks - entry_price_ticks)
    denominator = tick_num * entry_price_ticks * exit_price_ticks
    return div_round(numerator, denominator, rounding)


def mid_price_usd_cents(bid_price_ticks: int, ask_price_ticks: int, instrument: Instrument) -> int:
    """Mid price ``(bid + ask) / 2`` in USD cents, exact.

    Raises:
        OffGridError: the mid is not a whole number of cents (impossible for tick 0.1).
    """
    assert 0 < bid_price_ticks < ask_price_ticks, (bid_price_ticks, ask_price_ticks)
    tick_num, tick_den = _tick_ratio(instrument)
    numerator = (bid_price_ticks + ask_price_ticks) * tick_num * CENTS_PER_USD
    denominator = 2 * tick_den
    if numerator % denominator != 0:
        raise OffGridError("mid_price", f"({bid_price_ticks}+{ask_price_ticks})/2 ticks", "0.01")
    return numerator // denominator


def mid_price_usd_cents_from_book(book: LocalBook, instrument: Instrument) -> int | None:
    """Mid of a valid COIN-M `LocalBook` in USD cents; ``None`` if invalid or one-sided."""
    bid = book.best_bid()
    ask = book.best_ask()
    if not book.is_valid or bid is None or ask is None:
        return None
    return mid_price_usd_cents(bid[0], ask[0], instrument)


class IndexPrice(FeedRecord, frozen=True, kw_only=True, tag=True):
    """A USD price observation usable as an index/oracle source.

    Attributes:
        source_update_id: venue update id the price was derived from.
        price_usd_cents: price in USD cents (1e-2 USD).
    """

    source_update_id: int
    price_usd_cents: int


def iter_coinm_index(records: Iterable[FeedRecord], instrument: Instrument) -> Iterator[IndexPrice]:
    """Turn a COIN-M stream's `BookTicker` records into `IndexPrice` mids.

    Args:
        records: any record stream of ``instrument`` (other record types are ignored).
        instrument: the COIN-M instrument, e.g. `BINANCE_COINM_BTCUSD_PERP`.

    Yields:
        One `IndexPrice` per ticker with ``0 < bid < ask``; a locked/crossed or one-sided
        ticker (never seen in the capture) yields nothing rather than a bad price.
    """
    _tick_ratio(instrument)
    for record in records:
        if not isinstance(record, BookTicker) or record.symbol != instrument.symbol:
            continue
        if not 0 < record.bid_price_ticks < record.ask_price_ticks:
            continue
        yield IndexPrice(
            venue=record.venue,
            symbol=record.symbol,
            recv_time_ns=record.recv_time_ns,
            source_update_id=record.update_id,
            price_usd_cents=mid_price_usd_cents(record.bid_price_ticks, record.ask_price_ticks, instrument),
        )
