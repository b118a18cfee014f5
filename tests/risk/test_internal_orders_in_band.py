"""No trade outside a price band, whoever sends the order (issue 4 item 2; the verifier's per-fill band
check in bastion/audit/fills.py holds the venue to it). A client's limit beyond the band is refused (510);
the engine's own IOCs — liquidation orders and the insurance fund's unwind orders — are pulled inside it
(``Engine.band_limit``). Found by ``bastion verify`` on the march-2023-breakers replay: a fund unwind
IOC, limited at 1 % through the mark, bought at 161,506 ticks while the band was [158,205, 161,401].

Default venue: k = 100 atoms per tick-lot, so 1,000 lots (1 BTC) move 0.1 USDC per tick.
"""

from __future__ import annotations

from bastion.core.commands import CreateAccount, Deposit, DepositInsuranceFund, Heartbeat, PlaceOrder, SetMarkPrice
from bastion.core.events import OrderAccepted, TradeExecuted
from bastion.core.risk_messages import InsuranceFundUnwound, PositionTakenOver
from tests.integrity._engine_helpers import P, make_engine, of

NS = 10**9


def _fund_holds_a_long(band_ppm: int) -> tuple[object, object]:
    """Account 5 buys 1 BTC at 60,000.0 with 1,300 USDC; the mark falls to 58,600.0 with no bid: equity
    1,300 - 30 fee - 1,400 = -130 USDC, the liquidation IOC finds nothing, the fund takes the long."""
    engine, drive = make_engine({"band_ppm": band_ppm} if band_ppm else None)
    drive(DepositInsuranceFund(100_000 * 10**6))
    drive(SetMarkPrice(1, P))
    drive(PlaceOrder(1, 1, 1, -1, P, 1000))
    drive(CreateAccount(5, 5))
    drive(Deposit(5, 1_300 * 10**6))
    assert of(drive(PlaceOrder(5, 1, 1, 1, P, 1000)), TradeExecuted)
    events = drive(SetMarkPrice(1, 586_000))
    assert [e.qty_lots for e in of(events, PositionTakenOver)] == [1000]
    return engine, drive


def test_the_fund_unwinds_inside_the_band_only() -> None:
    """Band 0.2 % around the mark 586,000: [584,828, 587,172]. The unwind's own limit is 1 % through the
    mark (580,140): a bid at 582,000 would fill it outside the band, so no unwind order is sent; a bid at
    585,000 (inside) is then sold into, at 585,000."""
    engine, drive = _fund_holds_a_long(2_000)
    band = engine.integ[1].band
    assert (band.low_ticks, band.high_ticks) == (584_828, 587_172)
    drive(PlaceOrder(3, 1, 1, 1, 582_000, 5000))
    quiet = drive(Heartbeat(), at_ns=drive.now_ns + 2 * NS)
    assert not of(quiet, OrderAccepted) and not of(quiet, TradeExecuted)
    drive(PlaceOrder(4, 1, 1, 1, 585_000, 5000))
    events = drive(Heartbeat(), at_ns=drive.now_ns + 2 * NS)
    unwind = [e for e in of(events, OrderAccepted) if e.account_id == 0]
    assert unwind and unwind[0].price_ticks == 584_828  # 580,140 pulled up to the band's low edge
    fills = [e for e in of(events, TradeExecuted) if e.taker_account_id == 0]
    assert fills and {e.price_ticks for e in fills} == {585_000}
    assert sum(e.qty_lots for e in of(events, InsuranceFundUnwound)) == sum(e.qty_lots for e in fills)


def test_without_a_band_the_unwind_limit_is_its_own() -> None:
    """The control: no band, the same fund sells into the 582,000 bid (its limit 580,140 allows it), so the
    test above can fail."""
    engine, drive = _fund_holds_a_long(0)
    drive(PlaceOrder(3, 1, 1, 1, 582_000, 5000))
    events = drive(Heartbeat(), at_ns=drive.now_ns + 2 * NS)
    unwind = [e for e in of(events, OrderAccepted) if e.account_id == 0]
    assert unwind and unwind[0].price_ticks == 580_140
    assert {e.price_ticks for e in of(events, TradeExecuted)} == {582_000}
