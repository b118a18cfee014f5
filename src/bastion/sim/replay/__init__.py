"""``bastion replay``: real market data through the journaled venue (GitHub issue 6).

Layout (the pipeline is the package):

* ``scenario``    scenario TOML schema, bundled scenarios (``bastion/scenarios``), data locations
* ``capture``     Binance capture -> merged, synced, off-grid-rejecting record streams + local books
* ``tick``        tick replay: LP mirror of the real top N, real trades as IOC takers, index ticks
* ``bars``        bars replay: LP ladder around the 1-minute path, bar volume as takers, stress scaling
* ``liquidity``   LP accounts holding a target book (one post-only order per level)
* ``index``       OracleState index -> SetOraclePrice (the engine derives the mark), deviation figures
* ``agents``      seeded leveraged traders (``calibration``: sizes/leverage fitted from Hyperliquid 2023)
* ``risk``        under-maintenance / bankrupt / equity-shortfall figures; risk-engine event counting
* ``exchange``    sequencing at capture time through ``Venue.submit_sequenced``; event routing
* ``runner``      one run: venue, loop, snapshot, journal re-verification, summary.json
* ``report``      report.html (matplotlib, inline PNG); ``cli`` the typer command (``register(app)``)
"""

from bastion.sim.replay.runner import ReplayError, ReplayResult, run_replay
from bastion.sim.replay.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario, resolve_scenario

__all__ = [
    "ReplayError",
    "ReplayResult",
    "Scenario",
    "ScenarioError",
    "bundled_scenarios",
    "load_scenario",
    "resolve_scenario",
    "run_replay",
]
