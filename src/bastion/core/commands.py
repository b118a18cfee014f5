"""Commands: the only inputs of the core. Verbs, integer units, encoded as tagged msgspec structs.

Every command reaches the engine inside a :class:`Sequenced` envelope, stamped by the sequencer with a
sequence number and the engine time (``timestamp_ns``). The envelope, encoded with
:func:`encode_sequenced`, is exactly what the input journal stores.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

from bastion.core.risk_messages import SetOraclePrice

__all__ = [
    "AmendOrder",
    "CancelAll",
    "CancelOrder",
    "Command",
    "CommitOrder",
    "CreateAccount",
    "Deposit",
    "DepositInsuranceFund",
    "Heartbeat",
    "OrderType",
    "PlaceOrder",
    "RevealOrder",
    "STP",
    "Sequenced",
    "SetKillSwitch",
    "SetMarkPrice",
    "SetOraclePrice",
    "SetMarketState",
    "SetMatchingMode",
    "Side",
    "TimeInForce",
    "Transfer",
    "TriggerSource",
    "Withdraw",
    "decode_sequenced",
    "encode_sequenced",
]


class Side(IntEnum):
    """Order side; the value is the sign of the position change."""

    BUY = 1
    SELL = -1


class TimeInForce(IntEnum):
    """GTC rests; IOC fills what it can now; FOK fills whole or nothing; GTD rests until expire_at_ns."""

    GTC = 0
    IOC = 1
    FOK = 2
    GTD = 3


class OrderType(IntEnum):
    """LIMIT at price_ticks; MARKET becomes an IOC limit at the protection price (best +/- band).

    The trigger (conditional) types rest untriggered in the trigger book until their
    ``trigger_source`` price reaches ``trigger_price_ticks`` (docs/trigger-orders.md; the direction
    rule of Binance USD-M "New Order" and dYdX v4 ``Order.CanTrigger``):

    * STOP_MARKET / STOP_LIMIT: a buy fires when the source price >= trigger, a sell when <= trigger;
    * TAKE_PROFIT_MARKET / TAKE_PROFIT_LIMIT: a buy fires when the source price <= trigger, a sell
      when >= trigger.

    Once fired, a *_MARKET type enters as a MARKET order (protection price) and a *_LIMIT type as a
    LIMIT order at ``price_ticks``.
    """

    LIMIT = 0
    MARKET = 1
    STOP_MARKET = 2
    STOP_LIMIT = 3
    TAKE_PROFIT_MARKET = 4
    TAKE_PROFIT_LIMIT = 5


class TriggerSource(IntEnum):
    """The price a trigger order watches: the mark (default), the oracle index, or the last trade."""

    MARK = 0
    INDEX = 1
    LAST = 2


class STP(IntEnum):
    """Self-trade prevention, applied when a taker meets a resting order of the same account."""

    EXPIRE_MAKER = 0
    EXPIRE_TAKER = 1
    EXPIRE_BOTH = 2
    DECREMENT = 3


_opts = {"tag_field": "type", "frozen": True, "array_like": True, "gc": False}


class CreateAccount(msgspec.Struct, tag="create_account", **_opts):
    """Open account ``account_id`` (> 0) for ``owner_id``; accounts of one owner are its subaccounts.

    ``isolated_instrument_id`` > 0 opens an **isolated-margin** account: it may trade only that
    instrument, so its position is margined by its own collateral alone and a liquidation or loss there
    cannot reach the owner's other subaccounts (dYdX v4 and Drift hold isolated positions in separate
    subaccounts; shared/reference/risk-engines.md "Isolated margin"). Margin is added or removed with
    :class:`Transfer` between the owner's subaccounts (a removal is checked like a withdrawal).
    0 (the default) is a cross-margin account.
    """

    account_id: int
    owner_id: int
    isolated_instrument_id: int = 0


class Deposit(msgspec.Struct, tag="deposit", **_opts):
    """Credit ``amount_atoms`` (> 0) of the settlement asset from outside the venue."""

    account_id: int
    amount_atoms: int


class Withdraw(msgspec.Struct, tag="withdraw", **_opts):
    """Debit ``amount_atoms`` to outside; only settled cash that is not needed as initial margin."""

    account_id: int
    amount_atoms: int


class Transfer(msgspec.Struct, tag="transfer", **_opts):
    """Move settled cash between two subaccounts of the same owner (margin-checked like a withdrawal)."""

    from_account_id: int
    to_account_id: int
    amount_atoms: int


class DepositInsuranceFund(msgspec.Struct, tag="deposit_insurance_fund", **_opts):
    """Seed the insurance fund with ``amount_atoms`` from outside (an operator command)."""

    amount_atoms: int


class PlaceOrder(msgspec.Struct, tag="place_order", **_opts):
    """Submit an order. Units: price_ticks (ignored for MARKET), qty_lots, expire_at_ns (GTD only).

    Trigger orders (``order_type`` >= STOP_MARKET) also carry ``trigger_price_ticks`` (> 0) and
    ``trigger_source`` (:class:`TriggerSource`); ``close_position`` (stop/take-profit *market* only,
    with ``qty_lots`` 0 and ``reduce_only`` False) closes the whole position when it fires (Binance
    ``closePosition``). The three fields come last with defaults, so journals written before them
    decode unchanged (array-like encoding: missing trailing fields take their defaults).
    """

    account_id: int
    instrument_id: int
    client_order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    order_type: int = 0  # OrderType.LIMIT
    time_in_force: int = 0  # TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    stp: int = 0  # STP.EXPIRE_MAKER
    expire_at_ns: int = 0
    trigger_price_ticks: int = 0  # trigger orders only
    trigger_source: int = 0  # TriggerSource.MARK
    close_position: bool = False


class CancelOrder(msgspec.Struct, tag="cancel_order", **_opts):
    """Cancel by venue ``order_id`` or, when ``order_id`` is 0, by the account's ``client_order_id``."""

    account_id: int
    order_id: int = 0
    client_order_id: int = 0


class CancelAll(msgspec.Struct, tag="cancel_all", **_opts):
    """Cancel every resting order of the account, on one instrument or (``instrument_id`` 0) all."""

    account_id: int
    instrument_id: int = 0


class AmendOrder(msgspec.Struct, tag="amend_order", **_opts):
    """Change price and/or remaining size. Size down at the same price keeps priority; else re-enters.

    For an untriggered trigger order ``trigger_price_ticks`` > 0 also moves its trigger (0 keeps it);
    ``price_ticks`` is its limit price (ignored for the *_MARKET types). Live orders need 0 there.
    """

    account_id: int
    order_id: int
    price_ticks: int
    qty_lots: int
    trigger_price_ticks: int = 0


class SetMarkPrice(msgspec.Struct, tag="set_mark_price", **_opts):
    """Set an instrument's mark price (from the oracle/risk shell; journaled like every input)."""

    instrument_id: int
    price_ticks: int


class Heartbeat(msgspec.Struct, tag="heartbeat", **_opts):
    """Carries nothing but engine time: lets GTD orders expire when no other command arrives."""


# ---- market integrity (issue 4; docs/integrity-integration.md §2). Guardian commands carry the id of
# the guardian that the gateway authenticated; the engine only checks membership in venue.guardian_ids.


class SetMarketState(msgspec.Struct, tag="set_market_state", **_opts):
    """Guardian: move an instrument to ``state`` (``MarketState``). With ``state`` AUCTION,
    ``auction_ns`` > 0 schedules the uncross into ACTIVE at now + auction_ns (0: the guardian ends it)."""

    guardian_id: int
    instrument_id: int
    state: int
    auction_ns: int = 0


class SetKillSwitch(msgspec.Struct, tag="set_kill_switch", **_opts):
    """Guardian: engage or release the venue-wide kill switch (no entry, amend, commit or cash out)."""

    guardian_id: int
    engaged: bool


class SetMatchingMode(msgspec.Struct, tag="set_matching_mode", **_opts):
    """Guardian: switch an instrument between CONTINUOUS (0), BATCH (1) and SEALED_BATCH (2) matching.

    ``interval_ns`` is the batch interval (> 0; 0 for CONTINUOUS), ``reveal_ns`` the reveal window of a
    SEALED_BATCH market (0 < reveal_ns <= interval_ns; 0 otherwise). Allowed in HALTED/CANCEL_ONLY only.
    """

    guardian_id: int
    instrument_id: int
    mode: int
    interval_ns: int = 0
    reveal_ns: int = 0


class CommitOrder(msgspec.Struct, tag="commit_order", **_opts):
    """Sealed bid: commit SHA-256(canonical_order_bytes(order) || salt) (32 bytes), escrowing ``bond_atoms``."""

    account_id: int
    instrument_id: int
    commit_id: int
    commitment: bytes
    bond_atoms: int


class RevealOrder(msgspec.Struct, tag="reveal_order", **_opts):
    """Open a commitment during its round's reveal window (``price_ticks`` 0 = market order)."""

    account_id: int
    instrument_id: int
    commit_id: int
    client_order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    time_in_force: int
    salt: bytes


Command = (
    SetOraclePrice
    |     CreateAccount
    | Deposit
    | Withdraw
    | Transfer
    | DepositInsuranceFund
    | PlaceOrder
    | CancelOrder
    | CancelAll
    | AmendOrder
    | SetMarkPrice
    | Heartbeat
    | SetMarketState
    | SetKillSwitch
    | SetMatchingMode
    | CommitOrder
    | RevealOrder
)


class Sequenced(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A command stamped by the sequencer: the unit of the input journal.

    Attributes:
        seq: sequence number, 1, 2, 3, ... without gaps.
        timestamp_ns: engine time in ns; never decreases.
        command: the command.
    """

    seq: int
    timestamp_ns: int
    command: Command


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Sequenced)


def encode_sequenced(item: Sequenced) -> bytes:
    """Canonical msgpack bytes of a sequenced command (what the journal stores)."""
    return _encoder.encode(item)


def decode_sequenced(data: bytes) -> Sequenced:
    """Decode journal payload bytes.

    Raises:
        msgspec.ValidationError / msgspec.DecodeError: malformed or mistyped payload.
    """
    return _decoder.decode(data)
