"""Decimal text -> integer grid units: exact, strict, never rounded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.feeds._decimal import UnitsParser, decimal_from_text, units_from_text
from bastion.feeds.errors import FeedError, FeedFormatError, OffGridError


@pytest.mark.parametrize(
    ("text", "step", "units"),
    [
        ("61800.30", "0.1", 618003),
        ("61800.20", "0.1", 618002),
        ("0.006", "0.001", 6),
        ("0.000", "0.001", 0),
        ("61837.63000000", "0.01", 6183763),
        ("25.42618900", "0.000001", 25426189),
        ("1001", "1", 1001),
        ("2681.62", "0.01", 268162),
        ("200000.00000000", "0.01", 20000000),
        ("7.5", "0.5", 15),  # non-power-of-ten step
    ],
)
def test_units_exact(text: str, step: str, units: int) -> None:
    assert units_from_text(text, Decimal(step), "v") == units


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("61800.35", "0.1"),  # half a tick: must not round to either neighbour
        ("0.0065", "0.001"),
        ("25.42618900", "0.00001"),  # the real Spot level that rules out lot 1e-5
        ("7.6", "0.5"),
    ],
)
def test_off_grid_raises(text: str, step: str) -> None:
    with pytest.raises(OffGridError) as info:
        units_from_text(text, Decimal(step), "price")
    assert isinstance(info.value, FeedError)
    assert info.value.field == "price" and info.value.text == text and info.value.step == step


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-inf", "1_000", " 1", "1 ", "", "1e5", "0x10", "1.", ".5", "+1", "1.2.3"])
def test_malformed_rejected(text: str) -> None:
    with pytest.raises(FeedFormatError):
        units_from_text(text, Decimal("0.1"), "price")


def test_negative_rejected_unless_allowed() -> None:
    with pytest.raises(FeedFormatError):
        units_from_text("-1.5", Decimal("0.1"), "qty")
    assert units_from_text("-1.5", Decimal("0.1"), "qty", allow_negative=True) == -15


def test_exponent_only_when_allowed() -> None:
    with pytest.raises(FeedFormatError):
        decimal_from_text("5.4e-05", "volume")
    assert units_from_text("5.4e-05", Decimal("1e-8"), "volume", allow_exponent=True) == 5400
    assert units_from_text("1E+1", Decimal("1e-8"), "volume", allow_exponent=True) == 1_000_000_000
    with pytest.raises(OffGridError):
        units_from_text("1e-09", Decimal("1e-8"), "volume", allow_exponent=True)


def test_overlong_text_rejected() -> None:
    with pytest.raises(FeedFormatError):
        units_from_text("1" * 65, Decimal("1"), "qty")


def test_units_parser_memo_and_positive() -> None:
    parser = UnitsParser(Decimal("0.1"), "price", positive=True, cache_entries_max=2)
    assert [parser(t) for t in ["1.0", "1.0", "2.0", "3.0", "1.0"]] == [10, 10, 20, 30, 10]
    with pytest.raises(FeedFormatError):
        parser("0.0")
    with pytest.raises(OffGridError):
        parser("1.05")
    with pytest.raises(OffGridError):  # errors are not memoised
        parser("1.05")


@given(
    units=st.integers(min_value=0, max_value=10**15),
    exponent=st.integers(min_value=-8, max_value=2),
)
def test_round_trip_property(units: int, exponent: int) -> None:
    step = Decimal(1).scaleb(exponent)
    text = format(Decimal(units) * step, "f")
    assert units_from_text(text, step, "v") == units
    off = format(Decimal(units) * step + step / 10, "f")
    with pytest.raises(OffGridError):
        units_from_text(off, step, "v")
