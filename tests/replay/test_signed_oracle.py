"""The replay's oracle path goes through the shell: every index tick's reports are signed by their
sources and verified against the scenario's public keys; forged and altered reports are refused and
counted, and never reach the engine."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bastion.feeds.oracle_reports import PriceReport, SignedReport, sign_report
from bastion.feeds.oracle_shell import public_key_hex, replay_signing_key
from bastion.sim.replay.runner import ReplayResult, run_replay
from bastion.sim.replay.scenario import ScenarioError, load_scenario, resolve_scenario
from tests.feeds.test_oracle_shell import ATTACKER, _altered


class _Adversary:
    """Between the sources and the shell: adds a forged and an altered copy of reports (the honest
    ones still arrive), and every 7th tick replaces binance-spot's report by an altered one."""

    def __init__(self, replace: bool) -> None:
        self.replace = replace
        self.added = 0
        self.added_by_source: dict[str, int] = {}
        self.replaced: list[int] = []

    def __call__(self, time_ns: int, signed: list[SignedReport]) -> list[SignedReport]:
        out = list(signed)
        for report in signed:
            decoded = msgspec.msgpack.decode(report.payload, type=PriceReport)
            out.append(_altered(report, decoded.price * 2))
            out.append(sign_report(msgspec.structs.replace(decoded, price=decoded.price // 2), ATTACKER))
            self.added += 2
            self.added_by_source[report.source_id] = self.added_by_source.get(report.source_id, 0) + 2
        if self.replace and len(self.replaced) < 5 and time_ns // 10**9 % 7 == 0:
            for i, report in enumerate(out):
                if report.source_id == "binance-spot":
                    out[i] = _altered(report, 1)
                    self.replaced.append(time_ns)
                    break
        return out


def test_forged_reports_never_reach_the_engine(sample_run: ReplayResult, tmp_path: Path) -> None:
    """Forged (attacker key) and altered (payload changed, signature kept) copies of every report, sent
    beside the honest ones: all refused and counted, and the journal is the honest run's: same state
    hash, same SetOraclePrice stream."""
    adversary = _Adversary(replace=False)
    run = run_replay(resolve_scenario(None), tmp_path / "forged", write_report=False, oracle_tamper=adversary)
    oracle = run.summary["oracle_reports"]
    assert adversary.added > 300 and oracle["reports_rejected"] == adversary.added
    assert sum(v for k, v in oracle["rejected_by_reason"].items() if k.endswith(":signature_invalid")) == adversary.added
    assert oracle["reports_accepted"] == sample_run.summary["oracle_reports"]["reports_accepted"]
    assert run.summary["state_hash"] == sample_run.summary["state_hash"]
    assert sample_run.summary["oracle_reports"]["reports_rejected"] == 0


def test_a_report_altered_in_transit_drops_its_source_for_that_tick(sample_run: ReplayResult, tmp_path: Path) -> None:
    adversary = _Adversary(replace=True)
    run = run_replay(resolve_scenario(None), tmp_path / "altered", write_report=False, oracle_tamper=adversary)
    assert len(adversary.replaced) == 5
    oracle = run.summary["oracle_reports"]
    assert oracle["rejected_by_reason"]["binance-spot:signature_invalid"] == 5 + adversary.added_by_source["binance-spot"]
    assert oracle["reports_accepted"] == sample_run.summary["oracle_reports"]["reports_accepted"] - 5


def test_an_untrusted_source_key_refuses_all_its_reports(tmp_path: Path) -> None:
    """The scenario pins each source's public key: with binance-spot's key replaced by another one, none of
    its (honestly replay-signed) reports is accepted, and the index runs on the other two sources."""
    text = Path(resolve_scenario(None).origin).read_text()
    spot = public_key_hex(replay_signing_key("binance-spot"))
    assert spot in text
    path = tmp_path / "pinned.toml"
    path.write_text(text.replace(spot, public_key_hex(ATTACKER)).replace("duration_s = 0", "duration_s = 20"))
    run = run_replay(load_scenario(path), tmp_path / "out", write_report=False)
    oracle = run.summary["oracle_reports"]
    assert oracle["rejected_by_reason"] == {"binance-spot:signature_invalid": oracle["reports_rejected"]}
    assert oracle["reports_rejected"] >= 15 and run.summary["index"]["priced_ticks"] >= 15
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace(public_key_hex(ATTACKER), "00" * 31))
    with pytest.raises(ScenarioError, match="binance-spot"):
        load_scenario(bad)
