"""Events: past-tense facts the engine emits, in a deterministic order, for every command.

The events of one command, tagged with its sequence number, are the output log (and the leaves of the
Merkle transparency log). Encoded as tagged msgspec structs; :func:`encode_event` is canonical.
"""

from __future__ import annotations

import msgspec

from bastion.core.risk_messages import (
    AutoDeleveraged,
    BadDebtRecorded,
    FundingPaid,
    FundingRateSet,
    IndexPriceSet,
    InsuranceFundUnwound,
    InsuranceFundUsed,
    PositionLiquidated,
    PositionTakenOver,
    SocializedLoss,
    VolMultiplierSet,
)

__all__ = [
    "AccountCreated",
    "AutoDeleveraged",
    "BadDebtRecorded",
    "FundingPaid",
    "FundingRateSet",
    "IndexPriceSet",
    "InsuranceFundUnwound",
    "InsuranceFundUsed",
    "PositionLiquidated",
    "PositionTakenOver",
    "SocializedLoss",
    "AuctionCleared",
    "AuctionIndicative",
    "BondForfeited",
    "BondReturned",
    "KillSwitchSet",
    "MarketStateChanged",
    "MatchingModeSet",
    "OrderCommitted",
    "RevealReceived",
    "CommandRejected",
    "Deposited",
    "Event",
    "InsuranceFundDeposited",
    "MarkPriceSet",
    "OrderAccepted",
    "OrderAmended",
    "OrderCanceled",
    "OrderReduced",
    "TradeExecuted",
    "Transferred",
    "Withdrawn",
    "OrderTriggered",
    "TriggerOrderAccepted",
    "TriggerOrderAmended",
    "TriggerOrderReduced",
    "TriggerOrderRejected",
    "encode_event",
    "decode_event",
]

_opts = {"tag_field": "type", "frozen": True, "array_like": True, "gc": False}


class AccountCreated(msgspec.Struct, tag="account_created", **_opts):
    account_id: int
    owner_id: int
    isolated_instrument_id: int = 0


class Deposited(msgspec.Struct, tag="deposited", **_opts):
    account_id: int
    amount_atoms: int
    balance_atoms: int


class Withdrawn(msgspec.Struct, tag="withdrawn", **_opts):
    account_id: int
    amount_atoms: int
    balance_atoms: int


class Transferred(msgspec.Struct, tag="transferred", **_opts):
    from_account_id: int
    to_account_id: int
    amount_atoms: int


class InsuranceFundDeposited(msgspec.Struct, tag="insurance_fund_deposited", **_opts):
    amount_atoms: int
    insurance_fund_atoms: int


class CommandRejected(msgspec.Struct, tag="command_rejected", **_opts):
    """A command was refused with ``code`` (a :class:`~bastion.core.rejects.RejectCode`); state unchanged."""

    command_type: str
    account_id: int
    client_order_id: int
    code: int


class OrderAccepted(msgspec.Struct, tag="order_accepted", **_opts):
    """An order passed validation and margin; ``price_ticks`` is the effective limit (market: protection)."""

    order_id: int
    account_id: int
    instrument_id: int
    client_order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    time_in_force: int


class TradeExecuted(msgspec.Struct, tag="trade_executed", **_opts):
    """A fill at the maker's price. Fees are positive when paid, negative for rebates."""

    instrument_id: int
    price_ticks: int
    qty_lots: int
    taker_side: int
    maker_order_id: int
    taker_order_id: int
    maker_account_id: int
    taker_account_id: int
    maker_fee_atoms: int
    taker_fee_atoms: int
    maker_realized_pnl_atoms: int
    taker_realized_pnl_atoms: int


class OrderCanceled(msgspec.Struct, tag="order_canceled", **_opts):
    """An order (or a taker's unrested remainder) left; ``qty_lots`` is what was canceled."""

    order_id: int
    account_id: int
    reason: int
    qty_lots: int


class OrderReduced(msgspec.Struct, tag="order_reduced", **_opts):
    """A resting order shrank without a fill (STP decrement, reduce-only resize); priority kept."""

    order_id: int
    account_id: int
    reason: int
    qty_lots: int


class OrderAmended(msgspec.Struct, tag="order_amended", **_opts):
    order_id: int
    account_id: int
    price_ticks: int
    qty_lots: int
    priority_kept: bool


class MarkPriceSet(msgspec.Struct, tag="mark_price_set", **_opts):
    instrument_id: int
    price_ticks: int


# ---- market integrity (issue 4; docs/integrity-integration.md §3)


class MarketStateChanged(msgspec.Struct, tag="market_state_changed", **_opts):
    """An instrument changed ``MarketState``; ``reason`` is a ``TransitionReason``."""

    instrument_id: int
    from_state: int
    to_state: int
    reason: int


class KillSwitchSet(msgspec.Struct, tag="kill_switch_set", **_opts):
    engaged: bool


class MatchingModeSet(msgspec.Struct, tag="matching_mode_set", **_opts):
    instrument_id: int
    mode: int
    interval_ns: int
    reveal_ns: int


class AuctionIndicative(msgspec.Struct, tag="auction_indicative", **_opts):
    """What the running call auction would do now; ``price_ticks`` 0 means no cross."""

    instrument_id: int
    price_ticks: int
    matched_lots: int
    imbalance_lots: int


class AuctionCleared(msgspec.Struct, tag="auction_cleared", **_opts):
    """A call-auction uncross or batch clearing; its fills follow as TradeExecuted with taker_side 0."""

    instrument_id: int
    batch_index: int
    at_ns: int
    price_ticks: int
    volume_lots: int
    imbalance_lots: int


class OrderCommitted(msgspec.Struct, tag="order_committed", **_opts):
    """A sealed bid was committed (hash and bond only: no order content)."""

    account_id: int
    instrument_id: int
    commit_id: int
    commitment: bytes
    bond_atoms: int
    round_index: int
    reveal_open_ns: int
    reveal_close_ns: int


class RevealReceived(msgspec.Struct, tag="reveal_received", **_opts):
    """A reveal opened its commitment. No order content, on purpose (published at round close)."""

    account_id: int
    instrument_id: int
    commit_id: int


class BondForfeited(msgspec.Struct, tag="bond_forfeited", **_opts):
    """A commit-reveal bond went to the insurance fund (``reason``: ``BondForfeitReason``)."""

    account_id: int
    instrument_id: int
    commit_id: int
    bond_atoms: int
    reason: int
    insurance_fund_atoms: int


class BondReturned(msgspec.Struct, tag="bond_returned", **_opts):
    account_id: int
    instrument_id: int
    commit_id: int
    bond_atoms: int


# ---- trigger orders (issue 3 item 7; docs/trigger-orders.md). An untriggered order is not live: it has
# no OrderAccepted until it fires. Cancels of untriggered orders are ordinary OrderCanceled events.


class TriggerOrderAccepted(msgspec.Struct, tag="trigger_order_accepted", **_opts):
    """A trigger order was accepted and rests untriggered. ``price_ticks`` is the limit of a *_LIMIT
    type (0 for *_MARKET); ``qty_lots`` is 0 for a close-position order (sized when it fires)."""

    order_id: int
    account_id: int
    instrument_id: int
    client_order_id: int
    side: int
    order_type: int
    trigger_source: int
    trigger_price_ticks: int
    price_ticks: int
    qty_lots: int
    time_in_force: int
    reduce_only: bool
    close_position: bool


class OrderTriggered(msgspec.Struct, tag="order_triggered", **_opts):
    """The source price reached the trigger; the order now enters as an ordinary order (its
    OrderAccepted follows) or is refused (TriggerOrderRejected follows). ``source_price_ticks`` is the
    source price that reached the trigger."""

    order_id: int
    account_id: int
    instrument_id: int
    trigger_source: int
    trigger_price_ticks: int
    source_price_ticks: int


class TriggerOrderRejected(msgspec.Struct, tag="trigger_order_rejected", **_opts):
    """A fired trigger order failed the entry checks (``code``: a RejectCode, e.g. 300 margin); gone."""

    order_id: int
    account_id: int
    client_order_id: int
    code: int


class TriggerOrderAmended(msgspec.Struct, tag="trigger_order_amended", **_opts):
    """An untriggered order's trigger price, limit price or size changed (AmendOrder)."""

    order_id: int
    account_id: int
    trigger_price_ticks: int
    price_ticks: int
    qty_lots: int


class TriggerOrderReduced(msgspec.Struct, tag="trigger_order_reduced", **_opts):
    """An untriggered reduce-only order shrank to its position (``reason``: CancelReason)."""

    order_id: int
    account_id: int
    reason: int
    qty_lots: int


Event = (
    IndexPriceSet
    | PositionLiquidated
    | InsuranceFundUsed
    | PositionTakenOver
    | InsuranceFundUnwound
    | AutoDeleveraged
    | SocializedLoss
    | BadDebtRecorded
    | FundingRateSet
    | FundingPaid
    | VolMultiplierSet
    |     AccountCreated
    | Deposited
    | Withdrawn
    | Transferred
    | InsuranceFundDeposited
    | CommandRejected
    | OrderAccepted
    | TradeExecuted
    | OrderCanceled
    | OrderReduced
    | OrderAmended
    | MarkPriceSet
    | MarketStateChanged
    | KillSwitchSet
    | MatchingModeSet
    | AuctionIndicative
    | AuctionCleared
    | OrderCommitted
    | RevealReceived
    | BondForfeited
    | BondReturned
    | TriggerOrderAccepted
    | OrderTriggered
    | TriggerOrderRejected
    | TriggerOrderAmended
    | TriggerOrderReduced
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """Canonical msgpack bytes of one event."""
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    """Inverse of :func:`encode_event`. Raises msgspec.DecodeError / ValidationError on bad bytes."""
    event: Event = _decoder.decode(data)
    return event
