"""COIN-M inverse-contract arithmetic: exact integers, explicit rounding, BTC PnL."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.feeds.binance import BINANCE_COINM_BTCUSD_PERP, capture_files, iter_records, iter_synced
from bastion.feeds.inverse import (
    IndexPrice,
    Rounding,
    contracts_to_base_sats,
    contracts_to_notional_usd_cents,
    div_round,
    inverse_pnl_sats,
    iter_coinm_index,
    mid_price_usd_cents,
    mid_price_usd_cents_from_book,
)
from bastion.feeds.replay import replay_book
from bastion.feeds.sample import sample_dir

CM = BINANCE_COINM_BTCUSD_PERP


def test_notional_is_exact_100_usd_per_contract() -> None:
    assert contracts_to_notional_usd_cents(1, CM) == 10_000
    assert contracts_to_notional_usd_cents(1645, CM) == 16_450_000  # 164,500 USD
    assert contracts_to_notional_usd_cents(-4, CM) == -40_000


def test_contracts_to_base_sats_rounding() -> None:
    # 1 contract at 61804.8 USD (a real trade price): 100 / 61804.8 BTC = 161,799.73... sats
    price_ticks = 618048
    exact = Fraction(100 * 10**8) / Fraction(618048, 10)
    assert 161799 < exact < 161800
    assert contracts_to_base_sats(1, price_ticks, CM) == 161799  # FLOOR default
    assert contracts_to_base_sats(1, price_ticks, CM, Rounding.CEIL) == 161800
    assert contracts_to_base_sats(1, price_ticks, CM, Rounding.HALF_EVEN) == 161800
    # 1645 contracts at 61804.8: 164,500 / 61804.8 BTC = 2.66160... BTC
    assert contracts_to_base_sats(1645, price_ticks, CM) == int(Fraction(164_500 * 10**8) / Fraction(618048, 10))
    assert contracts_to_base_sats(-1, price_ticks, CM) == -161800  # floor goes toward -inf
    # exact case: 1 contract at 50,000 USD = 0.002 BTC
    assert contracts_to_base_sats(1, 500_000, CM, Rounding.CEIL) == 200_000


def test_inverse_pnl_in_btc_worked_example() -> None:
    """Inverse PnL = contracts * 100 USD * (1/entry - 1/exit), in BTC.

    Worked example (BitMEX/Binance COIN-M inverse-contract formula): long 100 contracts
    from 10,000 to 11,000 USD earns 10,000 * (1/10,000 - 1/11,000) = 0.0909090... BTC.
    """
    entry, exit_ = 100_000, 110_000  # ticks of 0.1 USD
    assert inverse_pnl_sats(100, entry, exit_, CM) == 9_090_909  # floor of 9,090,909.09 sats
    assert inverse_pnl_sats(100, entry, exit_, CM, Rounding.CEIL) == 9_090_910
    # Short the same move: loses 0.0909... BTC; FLOOR rounds the loss away from zero.
    assert inverse_pnl_sats(-100, entry, exit_, CM) == -9_090_910
    assert inverse_pnl_sats(-100, entry, exit_, CM, Rounding.CEIL) == -9_090_909
    # Asymmetry of inverse contracts: the same 10% down move loses more BTC for a long.
    assert inverse_pnl_sats(100, 100_000, 90_000, CM) == -11_111_112  # -0.1111... BTC vs +0.0909... up
    assert inverse_pnl_sats(7, 618048, 618048, CM) == 0


def test_mid_price_usd_cents() -> None:
    assert mid_price_usd_cents(618047, 618048, CM) == 6_180_475  # 61804.75 USD
    assert mid_price_usd_cents(618040, 618050, CM) == 6_180_450
    with pytest.raises(AssertionError):
        mid_price_usd_cents(618048, 618048, CM)


def test_coinm_index_from_bundled_sample() -> None:
    paths = capture_files(sample_dir())["cm_btcusd_perp"][1]
    prices = list(iter_coinm_index(iter_records(paths, CM), CM))
    assert len(prices) == 3584  # one per bookTicker
    first = prices[0]
    # 1723161256207640365 ... "u":1007198632021 ... "b":"61804.7" ... "a":"61804.8"
    assert first == IndexPrice(
        venue="binance-coinm",
        symbol="BTCUSD_PERP",
        recv_time_ns=1723161256207640365,
        source_update_id=1007198632021,
        price_usd_cents=6_180_475,
    )
    assert all(6_000_000 < p.price_usd_cents < 6_400_000 for p in prices)
    report, book = replay_book(iter_synced(paths, CM), CM)
    assert book.is_valid and report.best_bid is not None and report.best_ask is not None
    assert mid_price_usd_cents_from_book(book, CM) == mid_price_usd_cents(report.best_bid[0], report.best_ask[0], CM)


@given(
    numerator=st.integers(min_value=-(10**30), max_value=10**30),
    denominator=st.integers(min_value=-(10**12), max_value=10**12).filter(lambda d: d != 0),
)
def test_div_round_matches_exact_fraction(numerator: int, denominator: int) -> None:
    exact = Fraction(numerator, denominator)
    floor = div_round(numerator, denominator, Rounding.FLOOR)
    ceil = div_round(numerator, denominator, Rounding.CEIL)
    half_even = div_round(numerator, denominator, Rounding.HALF_EVEN)
    assert floor <= exact <= ceil and ceil - floor in (0, 1)
    assert (ceil == floor) == (exact.denominator == 1)
    assert half_even == round(exact)  # Python's round() on Fraction is half-to-even
