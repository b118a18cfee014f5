"""The build under test is the one intended: compiled core by default, pure source when asked."""

from __future__ import annotations

import os

import bastion.core.book.fast as fast
import bastion.core.book.reference as reference
import bastion.core.engine as engine


def test_core_build_mode() -> None:
    compiled = engine.__file__.endswith(".so")
    if os.environ.get("BASTION_EXPECT_PURE") == "1" or os.environ.get("BASTION_NATIVE") == "0":
        assert not compiled, engine.__file__
    elif os.environ.get("BASTION_EXPECT_NATIVE") == "1":
        assert compiled and fast.__file__.endswith(".so"), (engine.__file__, fast.__file__)
    # The reference book is never compiled: it must stay the slow, obviously correct twin.
    assert reference.__file__.endswith(".py")
