"""Maintenance margin, account health, liquidation and bankruptcy prices of linear perpetuals.

Definitions (all integers; k = ``atoms_per_tick_lot``; M = mark price in ticks):

* notional           ``n = |size| * M * k`` (atoms)
* maintenance margin ``MM(n) = ceil((n * mmf_t - ded_t) / 10**6)`` in the bracket t holding n, above the
  last bracket the last bracket's rate (``InstrumentSpec.maintenance_margin_atoms``). Source: Binance
  USD-M, "Maintenance Margin = Notional * Maintenance Margin Rate - Maintenance Amount", with
  "Maintenance Amount on Level n = Floor of bracket n * (MMR_n - MMR_{n-1}) + Maintenance Amount on
  Level n-1" (Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts").
  ``ded_t`` is that maintenance amount kept in atom*ppm so it is exact.
* equity             ``E = balance + sum(size * M * k - cost)`` (accounts.py)
* liquidatable       ``MM_total > 0 and E < MM_total`` (dYdX v4 ``x/clob/keeper/liquidations.go``:
  "TNC < MMR"). Every price below is derived from exactly this predicate, so an index built on
  liquidation prices finds exactly the accounts a brute-force scan finds.

Monotonicity (why a liquidation *price* exists): with the other positions fixed, ``g(M) = E(M) - MM(M)``
is non-decreasing in M for a long and non-increasing for a short. Proof sketch: ``MM`` is continuous
across brackets (the deductions make it so) with slope ``mmf/10**6 <= 1`` per atom of notional, so
``ceil(MM)`` rises by at most one atom when the notional rises by one atom, while the equity of a long
rises by exactly one atom. Hence ``{M : g(M) < 0}`` is a prefix ``[0, L]`` for a long and a suffix
``[L, inf)`` for a short, and L is computed in closed form bracket by bracket (``O(brackets)``).

Rounding: maintenance margin rounds up (the venue's favour); the liquidation price is the exact integer
boundary of the predicate (no rounding choice is left); bankruptcy prices round so that a close at the
rounded price never leaves the account below zero (long: up, short: down — dYdX rounds the bankruptcy
quote "toward +inf so no insurance payment is needed at the rounded price").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bastion.core.instruments import InstrumentSpec, MarginTier
from bastion.core.risk._types import PPM, PRICE_TICKS_UNBOUNDED, AccountLike

__all__ = [
    "MarginHealth",
    "account_health",
    "account_maintenance_atoms",
    "bankruptcy_price_ticks",
    "close_bankruptcy_price_ticks",
    "is_liquidatable",
    "liquidation_price_ticks",
    "maintenance_margin_atoms",
    "position_maintenance_atoms",
    "tier_for_notional",
]

TIERS_MAX = 64
"""Most margin brackets one instrument may have (bounds every bracket walk)."""


def _ceil_div(numerator: int, denominator: int) -> int:
    assert denominator > 0
    return -((-numerator) // denominator)


def tier_for_notional(spec: InstrumentSpec, notional_atoms: int) -> MarginTier:
    """The bracket that prices ``notional_atoms`` (the last bracket above the last cap)."""
    tiers = spec.margin_tiers
    assert 0 < len(tiers) <= TIERS_MAX and notional_atoms >= 0
    for tier in tiers:
        if notional_atoms <= tier.notional_max_atoms:
            return tier
    return tiers[-1]


def maintenance_margin_atoms(spec: InstrumentSpec, notional_atoms: int) -> int:
    """Maintenance margin of a position of ``notional_atoms`` (>= 0), rounded up.

    Source: Binance USD-M ``Notional * MMR - Maintenance Amount`` (module docstring). Equal to
    ``spec.maintenance_margin_atoms``; restated here so every risk formula reads from one place.
    """
    tier = tier_for_notional(spec, notional_atoms)
    result = _ceil_div(notional_atoms * tier.mmf_ppm - tier.mm_deduction_atom_ppm, PPM)
    assert result >= 0 and (notional_atoms == 0) == (result == 0)
    return result


def position_maintenance_atoms(spec: InstrumentSpec, size_lots: int, mark_ticks: int) -> int:
    """Maintenance margin of a position of ``size_lots`` (signed) at ``mark_ticks`` (> 0)."""
    assert mark_ticks > 0
    return maintenance_margin_atoms(spec, abs(size_lots) * mark_ticks * spec.atoms_per_tick_lot)


@dataclass(frozen=True, slots=True)
class MarginHealth:
    """An account's margin state at given marks.

    Attributes:
        equity_atoms: balance + unrealized PnL (total net collateral, dYdX "TNC").
        maintenance_atoms: sum of the positions' maintenance margins (dYdX "TMMR").
    """

    equity_atoms: int
    maintenance_atoms: int

    @property
    def liquidatable(self) -> bool:
        """``maintenance > 0 and equity < maintenance``."""
        return is_liquidatable(self.equity_atoms, self.maintenance_atoms)

    @property
    def slack_atoms(self) -> int:
        """``equity - maintenance``: negative exactly when liquidatable (for accounts with positions)."""
        return self.equity_atoms - self.maintenance_atoms


def is_liquidatable(equity_atoms: int, maintenance_atoms: int) -> bool:
    """The liquidation predicate: ``maintenance > 0 and equity < maintenance`` (dYdX v4)."""
    return maintenance_atoms > 0 and equity_atoms < maintenance_atoms


def account_health(account: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int]) -> MarginHealth:
    """Equity and maintenance margin of ``account`` (cross margin) at ``marks``.

    Args:
        account: any object with ``balance_atoms`` and ``positions`` (engine ``Account`` fits).
        specs / marks: instrument specs and mark prices (ticks, > 0) by instrument id.

    Returns:
        :class:`MarginHealth` (exact integers).
    """
    equity = account.balance_atoms
    maintenance = 0
    for iid, pos in account.positions.items():
        size = pos.size_lots
        if not size:
            continue
        spec = specs[iid]
        mark = marks[iid]
        k = spec.atoms_per_tick_lot
        equity += size * mark * k - pos.cost_atoms
        maintenance += maintenance_margin_atoms(spec, (size if size > 0 else -size) * mark * k)
    return MarginHealth(equity, maintenance)


def account_maintenance_atoms(account: AccountLike, specs: Mapping[int, InstrumentSpec],
                              marks: Mapping[int, int]) -> int:
    """Sum of the maintenance margins of the account's positions at ``marks`` (atoms)."""
    return account_health(account, specs, marks).maintenance_atoms


def _tier_bounds(tiers: tuple[MarginTier, ...], index: int) -> tuple[int, int | None]:
    """Notional range ``[lo, hi]`` (atoms) priced by bracket ``index``; ``hi`` None for the last one."""
    lo = 0 if index == 0 else tiers[index - 1].notional_max_atoms + 1
    hi = None if index == len(tiers) - 1 else tiers[index].notional_max_atoms
    return lo, hi


def liquidation_price_ticks(spec: InstrumentSpec, size_lots: int, cost_atoms: int, collateral_atoms: int,
                            other_maintenance_atoms: int = 0) -> int:
    """The mark price at which a position becomes liquidatable, other positions held fixed.

    Isolated margin: ``collateral`` is the position's isolated margin, ``other_maintenance`` 0 (Binance:
    "in isolated mode TMM = 0, UPNL = 0"). Cross margin: ``collateral = balance + uPnL of the other
    positions`` and ``other_maintenance`` their maintenance margin, both at current marks (Binance WB,
    UPNL1, TMM1). The bracket is re-chosen at the liquidation price itself, which Binance's note asks
    for by hand ("if the position at the liquidation price is in a different level, substitute...").

    Args:
        spec: the instrument.
        size_lots: signed position size, != 0.
        cost_atoms: signed entry notional (accounts.py).
        collateral_atoms: see above (may be negative).
        other_maintenance_atoms: >= 0.

    Returns:
        Long: the largest ``L >= 0`` with the account liquidatable at every mark ``M <= L``
        (liquidatable iff ``M <= L``; 0 means never at a positive price; :data:`PRICE_TICKS_UNBOUNDED`
        means at every price). Short: the smallest ``L >= 0`` with the account liquidatable iff
        ``M >= L``. Exact: derived from ``E < MM`` with integer arithmetic only.
    """
    assert size_lots != 0 and other_maintenance_atoms >= 0
    k = spec.atoms_per_tick_lot
    tiers = spec.margin_tiers
    assert len(tiers) <= TIERS_MAX
    constant = collateral_atoms - other_maintenance_atoms - cost_atoms
    if size_lots > 0:
        result = _long_liquidation_price(tiers, size_lots * k, constant)
    else:
        result = _short_liquidation_price(tiers, -size_lots * k, constant)
    assert 0 <= result <= PRICE_TICKS_UNBOUNDED
    return result


def _long_liquidation_price(tiers: tuple[MarginTier, ...], lots_k: int, constant: int) -> int:
    # g(M) = constant + n - ceil((n*mmf - ded)/PPM), n = lots_k * M. For integer a: a < ceil(y) <=> a < y,
    # so g < 0 <=> n * (PPM - mmf) < -ded - PPM * constant (module docstring).
    best = -1
    for index, tier in enumerate(tiers):
        lo, hi = _tier_bounds(tiers, index)
        m_lo = _ceil_div(lo, lots_k)
        m_hi = None if hi is None else hi // lots_k
        if m_hi is not None and m_lo > m_hi:
            continue
        numerator = -tier.mm_deduction_atom_ppm - PPM * constant
        slope = lots_k * (PPM - tier.mmf_ppm)
        if slope == 0:
            if numerator <= 0:
                break
            if m_hi is None:
                return PRICE_TICKS_UNBOUNDED
            best = m_hi
            continue
        m_max = _ceil_div(numerator, slope) - 1
        if m_max < m_lo:
            break
        if m_hi is None or m_max < m_hi:
            best = m_max
            break
        best = m_hi
    return min(max(best, 0), PRICE_TICKS_UNBOUNDED)


def _short_liquidation_price(tiers: tuple[MarginTier, ...], lots_k: int, constant: int) -> int:
    # g(M) = constant - n - ceil((n*mmf - ded)/PPM); g < 0 <=> n * (PPM + mmf) > PPM * constant + ded.
    for index, tier in enumerate(tiers):
        lo, hi = _tier_bounds(tiers, index)
        m_lo = _ceil_div(lo, lots_k)
        m_hi = None if hi is None else hi // lots_k
        if m_hi is not None and m_lo > m_hi:
            continue
        m_min = (PPM * constant + tier.mm_deduction_atom_ppm) // (lots_k * (PPM + tier.mmf_ppm)) + 1
        candidate = max(m_min, m_lo)
        if m_hi is None or candidate <= m_hi:
            return min(max(candidate, 0), PRICE_TICKS_UNBOUNDED)
    raise AssertionError("unreachable: the last bracket is unbounded")


def bankruptcy_price_ticks(spec: InstrumentSpec, size_lots: int, cost_atoms: int, collateral_atoms: int) -> int:
    """The price at which closing the whole position leaves the account's equity at zero (rounded safe).

    ``collateral`` as in :func:`liquidation_price_ticks` (maintenance margin plays no part). Long:
    ``ceil((cost - collateral) / (size * k))``; short: ``floor((collateral - cost) / (|size| * k))``:
    the price P with ``collateral + size*P*k - cost >= 0`` closest to the exact bankruptcy price. A close
    at the returned price leaves equity >= 0 (Binance "bankruptcy price"; dYdX rounding).

    Returns:
        The price in ticks; for a short it may be <= 0 (bankrupt at every price).
    """
    assert size_lots != 0
    k = spec.atoms_per_tick_lot
    base = collateral_atoms - cost_atoms
    if size_lots > 0:
        price = _ceil_div(-base, size_lots * k)
        assert base + size_lots * price * k >= 0
    else:
        price = base // (-size_lots * k)
        assert base + size_lots * price * k >= 0
    return price


def close_bankruptcy_price_ticks(spec: InstrumentSpec, size_lots: int, close_lots: int, mark_ticks: int,
                                 equity_atoms: int, maintenance_atoms: int) -> int:
    """Bankruptcy price of closing ``close_lots`` of a position inside a cross account (dYdX v4).

    dYdX ``GetBankruptcyPriceInQuoteQuantums``: the quote the account must receive for the close is
    ``-DNNV - TNC * |DMMR| / TMMR``, where DNNV is the change of the position's net notional at the mark
    and DMMR the change of its maintenance margin: the close may consume the share of the account's
    equity (TNC) that the closed part carries in maintenance margin. For the whole position of a
    single-position account this is the plain bankruptcy price.

    Args:
        spec: the instrument.
        size_lots: signed position size, != 0.
        close_lots: 1..|size_lots|.
        mark_ticks: mark price (> 0).
        equity_atoms: account equity at marks (TNC, may be negative).
        maintenance_atoms: account maintenance margin (TMMR, > 0).

    Returns:
        Price in ticks: rounded up for a long (the close sells), down for a short (the close buys), so
        that a close at the returned price hands the account at least its bankruptcy quote.
    """
    abs_size = abs(size_lots)
    assert 1 <= close_lots <= abs_size and mark_ticks > 0 and maintenance_atoms > 0
    k = spec.atoms_per_tick_lot
    delta_mm = (position_maintenance_atoms(spec, abs_size, mark_ticks)
                - position_maintenance_atoms(spec, abs_size - close_lots, mark_ticks))
    assert 0 <= delta_mm <= maintenance_atoms
    scale = close_lots * k * maintenance_atoms
    share_scaled = equity_atoms * delta_mm  # equity share of the closed part, times TMMR
    if size_lots > 0:
        return _ceil_div(close_lots * mark_ticks * k * maintenance_atoms - share_scaled, scale)
    return (close_lots * mark_ticks * k * maintenance_atoms + share_scaled) // scale
