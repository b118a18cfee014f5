"""Verifiable execution: the output log, signed checkpoints, proofs and the independent verifier.

* :mod:`bastion.audit.merkle`      RFC 6962/9162 Merkle tree, inclusion and consistency proofs
* :mod:`bastion.audit.checkpoint`  C2SP signed-note checkpoints, Ed25519 venue key
* :mod:`bastion.audit.outlog`      output-log leaves (seq, index, event) and ``events.bin``
* :mod:`bastion.audit.layout`      the audited venue directory: key, config, checkpoint files
* :mod:`bastion.audit.verify`      ``bastion verify``: re-execution on the reference engine
* :mod:`bastion.audit.prove`       ``bastion prove`` / ``check-proof``: inclusion-proof bundles
* :mod:`bastion.audit.commands`    the typer commands (``register(app)``)
* :mod:`bastion.audit.bench`       replay vs verify benchmarks

Submodules are imported explicitly (``bastion.venue`` depends on this package, and
``bastion.audit.bench`` on the venue), so this package re-exports nothing.
"""
