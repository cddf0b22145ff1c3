"""Broker addresses for balancers under test, from a table the test rewrites.

A Kubernetes headless Service answers a lookup of its name with one address per broker pod,
and the answer changes as pods come and go. The system suite cannot serve DNS, so its
balancers name ``broker_dns:resolve`` as ``cluster.broker_resolver``: it reads the JSON object
``{host: [address, ...]}`` in the file ``FLEET_DNS_FILE`` on every lookup, and a name missing
from it fails as an unknown DNS name does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["resolve", "write_table"]


def resolve(host: str) -> list[str]:
    """The addresses the table lists for ``host``; ``OSError`` if it lists none."""
    table = json.loads(Path(os.environ["FLEET_DNS_FILE"]).read_text())
    if host not in table:
        raise OSError(f"{host}: name not known")
    return list(table[host])


def write_table(path: Path, table: dict[str, list[str]]) -> None:
    """Replace the table at ``path`` at once (a balancer never reads half a file)."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(table))
    scratch.replace(path)
