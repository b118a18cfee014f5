"""Order books: the fast book used by the engine and the naive reference book used to check it."""

from bastion.core.book.base import MatchContext, Order, OrderBook
from bastion.core.book.fast import FastBook
from bastion.core.book.reference import ReferenceBook

__all__ = ["FastBook", "MatchContext", "Order", "OrderBook", "ReferenceBook"]
