"""Open-interest caps per market, and dYdX's open-interest-scaled initial margin.

Open interest (OI) = total long size = total short size. A fill of q lots between a buyer and a seller
changes OI by ``+q`` if both open, ``-q`` if both close, 0 otherwise, so a fill can raise OI only by
what the *taker* opens: checking the taker's opening quantity against the room under the cap before
matching is a sufficient (conservative) pre-trade check — an order is refused with
``open_interest_cap_exceeded`` when ``oi + opening > cap`` (reduce-only and closing orders always pass).
Caps bound the damage of a thin, manipulable market (dYdX v3 YFI 2023; Hyperliquid JELLY 2025 —
reference/risk-engines.md §3).

dYdX v4 OIMF (``x/perpetuals/types/liquidity_tier.go``): ``scaling = (open notional - lower cap) /
(upper cap - lower cap)``, ``IMF_eff = min(IMF_base + max(scaling * (1 - IMF_base), 0), 1)``, disabled
when ``upper cap == 0``; rounded up here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core.risk._types import PPM, RiskRejectCode

__all__ = [
    "OpenInterestCap",
    "check_open_interest",
    "oi_change_lots",
    "oi_scaled_imf_ppm",
    "opening_lots",
]


@dataclass(frozen=True, slots=True)
class OpenInterestCap:
    """Per-market cap: ``oi_lots_max`` lots of long open interest (0 = no cap)."""

    instrument_id: int
    oi_lots_max: int

    def __post_init__(self) -> None:
        assert self.oi_lots_max >= 0


def opening_lots(position_lots: int, side: int, qty_lots: int) -> int:
    """Part of an order of ``qty_lots`` on ``side`` that would open (increase |position|)."""
    assert side in (1, -1) and qty_lots >= 0
    if position_lots * side >= 0:
        return qty_lots
    return max(0, qty_lots - abs(position_lots))


def oi_change_lots(buyer_position_lots: int, seller_position_lots: int, qty_lots: int) -> int:
    """Exact OI change of a fill of ``qty_lots`` (OI counted on the long side)."""
    assert qty_lots > 0
    buyer_after = buyer_position_lots + qty_lots
    seller_after = seller_position_lots - qty_lots
    return (max(buyer_after, 0) - max(buyer_position_lots, 0)) + (max(seller_after, 0) - max(seller_position_lots, 0))


def check_open_interest(oi_lots: int, cap: OpenInterestCap, position_lots: int, side: int, qty_lots: int,
                        reduce_only: bool) -> RiskRejectCode | None:
    """Pre-trade OI check of a taker order (module docstring); None when it passes."""
    assert oi_lots >= 0
    if reduce_only or cap.oi_lots_max == 0:
        return None
    if oi_lots + opening_lots(position_lots, side, qty_lots) > cap.oi_lots_max:
        return RiskRejectCode.open_interest_cap_exceeded
    return None


def oi_scaled_imf_ppm(base_imf_ppm: int, open_notional_atoms: int, lower_cap_atoms: int,
                      upper_cap_atoms: int) -> int:
    """dYdX OIMF: the initial-margin fraction rises linearly to 100 % between the OI caps (ppm, up)."""
    assert 0 < base_imf_ppm <= PPM and open_notional_atoms >= 0
    if upper_cap_atoms == 0:
        return base_imf_ppm
    assert upper_cap_atoms > lower_cap_atoms >= 0
    over = open_notional_atoms - lower_cap_atoms
    if over <= 0:
        return base_imf_ppm
    extra = -((-over * (PPM - base_imf_ppm)) // (upper_cap_atoms - lower_cap_atoms))
    return min(PPM, base_imf_ppm + extra)
