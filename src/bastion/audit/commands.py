"""Typer commands of the audit layer: ``bastion verify``, ``bastion prove``, ``bastion check-proof``.

The lead's ``bastion.cli`` calls :func:`register` on its app. Shell code: files, progress bars, exit codes.

Exit codes: verify 0 clean / 1 divergence or tampering / 2 cannot run; prove 0 bundle written / 1 nothing
to prove (no such order, or no checkpoint signed at a requested size) / 2 cannot run; check-proof 0 valid / 1 invalid (with the reason) / 2 unreadable file or key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bastion.audit.checkpoint import KeyFormatError
from bastion.audit.ledger import ledger_command
from bastion.audit.prove import (
    ProofInvalid,
    ProofQuery,
    ProveError,
    build_consistency_proof,
    build_proof,
    check_bundle,
    load_bundle,
)
from bastion.audit.verify import INVARIANTS_EVERY_DEFAULT, VerifyReport, verify_directory

__all__ = ["register", "verify_command", "prove_command", "check_proof_command"]

_err = Console(stderr=True)
#: Journals smaller than this verify in well under a second: no progress bar.
_PROGRESS_MIN_BYTES = 4 << 20


def _read_key(value: str) -> str:
    """A verifier key given as a file (``venue.pub``) or inline (``name+id+base64``)."""
    path = Path(value)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if "+" in value:
        return value.strip()
    raise typer.BadParameter(f"{value!r} is neither a readable file nor a verifier key string")


def _print_report(report: VerifyReport, directory: Path) -> None:
    for warning in report.warnings:
        _err.print(f"[yellow]warning:[/] {warning}")
    bands = f" ({report.band_fills:,} inside a price band)" if report.band_fills else ""
    figures = (f"{report.commands:,} commands, {report.events:,} events, {report.fills:,} fills{bands} "
               f"(limits and price-time priority), {report.checkpoints} checkpoints, {report.invariant_checks} "
               f"full invariant checks, {report.snapshots} snapshots checked against re-execution (never used "
               f"as input), {report.elapsed_s:.2f} s")
    if report.status == 0:
        print(f"OK {directory}: {figures}")
    elif report.status == 1:
        print(f"DIVERGENCE in {directory}: {report.finding}")
        print(f"  (verified before it: {figures})")
    else:
        print(f"CANNOT VERIFY {directory}: {report.finding}")


def verify_command(
    directory: Path = typer.Argument(..., help="The venue directory."),
    key: Optional[str] = typer.Option(None, "--key", help="Pinned verifier key (file or string); default: DIR/venue.pub."),
    trusted: list[Path] = typer.Option([], "--trusted-checkpoint", help="A checkpoint seen earlier (repeatable)."),
    invariants_every: int = typer.Option(INVARIANTS_EVERY_DEFAULT, "--invariants-every",
                                         help="Full invariant check every N commands (1 = all, 0 = checkpoints only)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Re-execute the journal on the reference engine and check the output log, checkpoints and invariants."""
    try:
        pinned = _read_key(key) if key is not None else None
        notes = [path.read_bytes() for path in trusted]
    except (OSError, typer.BadParameter) as exc:
        _err.print(f"[red]cannot read input:[/] {exc}")
        raise typer.Exit(2) from None
    journal = directory / "journal.bin"
    size = journal.stat().st_size if journal.is_file() else 0
    progress = Progress(TextColumn("[bold]verify"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=_err, transient=True, disable=size < _PROGRESS_MIN_BYTES)
    with progress:
        task = progress.add_task("verify", total=size)
        report = verify_directory(directory, key=pinned, trusted_checkpoints=notes,
                                  invariants_every=invariants_every,
                                  on_progress=lambda done, total: progress.update(task, completed=done))
    if json_out:
        print(json.dumps(report.to_dict()))
    else:
        _print_report(report, directory)
    raise typer.Exit(report.status)


def prove_command(
    directory: Path = typer.Argument(..., help="The venue directory."),
    order_id: Optional[int] = typer.Option(None, "--order-id", help="Prove every event about this order."),
    seq: Optional[int] = typer.Option(None, "--seq", help="Prove the events of the command with this seq."),
    index: Optional[int] = typer.Option(None, "--index", help="With --seq: only the event at this index."),
    trade: bool = typer.Option(False, "--trade", help="Only fills (TradeExecuted)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Prove against this checkpoint file."),
    consistency: Optional[tuple[int, int]] = typer.Option(
        None, "--consistency", help="OLD_SIZE NEW_SIZE: prove that the signed log at NEW_SIZE extends OLD_SIZE."),
    from_checkpoint: Optional[Path] = typer.Option(
        None, "--from-checkpoint", help="A checkpoint kept earlier: prove that --checkpoint (default: the newest) "
                                        "extends it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the bundle here (default: stdout)."),
) -> None:
    """Write a JSON proof bundle: leaves with inclusion proofs, or a consistency proof between two checkpoints,
    with the signed checkpoints they verify under."""
    bundle: dict[str, Any]
    try:
        if consistency is not None or from_checkpoint is not None:
            if order_id is not None or seq is not None:
                raise ValueError("--consistency / --from-checkpoint do not take --order-id or --seq")
            bundle = _consistency_bundle(directory, consistency, from_checkpoint, checkpoint)
            what = f"consistency proof {bundle['old_size']} -> {bundle['new_size']}"
        else:
            bundle = build_proof(directory, ProofQuery(order_id=order_id, seq=seq, index=index, trade=trade),
                                 checkpoint)
            what = f"{len(bundle['leaves'])} leaves"
    except ValueError as exc:
        _err.print(f"[red]bad query:[/] {exc}")
        raise typer.Exit(2) from None
    except ProveError as exc:
        _err.print(f"[red]prove:[/] {exc}")
        raise typer.Exit(exc.status) from None
    text = json.dumps(bundle, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        _err.print(f"wrote {what} to {out}")


def _consistency_bundle(directory: Path, sizes: tuple[int, int] | None, old: Path | None,
                        new: Path | None) -> dict[str, object]:
    try:
        old_note = old.read_bytes() if old is not None else None
        new_note = new.read_bytes() if new is not None else None
    except OSError as exc:
        raise ProveError(2, f"cannot read the checkpoint: {exc}") from None
    if sizes is not None and old_note is not None:
        raise ValueError("give --consistency OLD_SIZE NEW_SIZE or --from-checkpoint, not both")
    if sizes is not None and new_note is not None:
        raise ValueError("--consistency names both checkpoints by size; drop --checkpoint")
    old_size, new_size = sizes if sizes is not None else (None, None)
    return build_consistency_proof(directory, old_size=old_size, new_size=new_size, old_checkpoint=old_note,
                                   new_checkpoint=new_note)


def check_proof_command(
    proof: Path = typer.Argument(..., help="A proof bundle written by bastion prove."),
    key: str = typer.Option(..., "--key", help="The venue's verifier key (venue.pub file or the key string)."),
) -> None:
    """Verify a proof bundle (inclusion or consistency) offline with only the venue's public key."""
    try:
        verifier = _read_key(key)
        bundle = load_bundle(proof)
    except (OSError, typer.BadParameter) as exc:
        _err.print(f"[red]cannot read input:[/] {exc}")
        raise typer.Exit(2) from None
    except ProofInvalid as exc:
        print(f"INVALID: {exc}")
        raise typer.Exit(1) from None
    try:
        summary = check_bundle(bundle, verifier)
    except KeyFormatError as exc:
        _err.print(f"[red]bad key:[/] {exc}")
        raise typer.Exit(2) from None
    except ProofInvalid as exc:
        print(f"INVALID: {exc}")
        raise typer.Exit(1) from None
    print(summary)


def register(app: typer.Typer) -> None:
    """Add ``verify``, ``prove``, ``check-proof`` and ``ledger`` to ``app``."""
    app.command("verify")(verify_command)
    app.command("prove")(prove_command)
    app.command("check-proof")(check_proof_command)
    app.command("ledger")(ledger_command)
