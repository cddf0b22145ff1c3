"""``xtts model download``: fetch XTTS-v2 from the Hugging Face hub, resumably, then check it.

The weights are under the Coqui Public Model License (non-commercial use only), so nothing is
fetched until the user accepts it with ``--accept-license`` or ``XTTS_ACCEPT_CPML=1`` (coqui's own
``COQUI_TOS_AGREED=1`` is honoured too). Files go straight into the target folder through
``huggingface_hub`` (its progress bars, its resume of interrupted downloads, its ETag checks);
afterwards the folder is loaded on cpu as ``xtts model check`` does. The hub address comes from
``HF_ENDPOINT``, which is how the tests point it at a local fake hub.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from xtts_cli.console import info, state
from xtts_cli.errors import CliError, UsageError

REPO = "coqui/XTTS-v2"
FILES = ("config.json", "vocab.json", "speakers_xtts.pth", "model.pth")
LICENSE_URL = "https://coqui.ai/cpml"
ACCEPT_ENV = ("XTTS_ACCEPT_CPML", "COQUI_TOS_AGREED")


def license_accepted(flag: bool) -> bool:
    """The flag, or one of :data:`ACCEPT_ENV` set to 1/true/yes."""
    return flag or any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes"} for name in ACCEPT_ENV
    )


def check_reachable(endpoint: str, timeout: float = 5.0) -> None:
    """Fail at once when the hub's host does not accept connections (``huggingface_hub`` would
    retry with back-off for ~25 s first). Skipped behind a proxy, where only the proxy is reached."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise CliError(
            f"cannot reach the Hugging Face hub at {endpoint}: {exc.strerror or exc}; "
            "check the network connection (or HF_ENDPOINT)"
        ) from None


def download(
    directory: Annotated[
        Path, typer.Argument(envvar="XTTS_MODEL_DIR", help="Folder to download into.")
    ] = Path("XTTS-v2"),
    accept_license: Annotated[
        bool,
        typer.Option(
            "--accept-license",
            help=f"Accept the Coqui Public Model License ({LICENSE_URL}; non-commercial use only).",
        ),
    ] = False,
    repo: Annotated[str, typer.Option("--repo", help="Hub repository.")] = REPO,
    revision: Annotated[str, typer.Option("--revision", help="Branch, tag or commit.")] = "main",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Load the files afterwards to check them.")
    ] = True,
) -> None:
    """Download the XTTS-v2 checkpoint files (config.json, model.pth, vocab.json, speakers)."""
    if not license_accepted(accept_license):
        raise UsageError(
            f"the XTTS-v2 weights are under the Coqui Public Model License ({LICENSE_URL}), "
            "which allows non-commercial use only: pass --accept-license or set "
            "XTTS_ACCEPT_CPML=1 to accept it"
        )
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils.tqdm import disable_progress_bars

    if state.quiet:
        disable_progress_bars()
    check_reachable(constants.ENDPOINT)
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        try:
            hf_hub_download(repo, name, revision=revision, local_dir=directory)
        except LocalEntryNotFoundError:
            raise CliError(
                f"cannot reach the Hugging Face hub at {constants.ENDPOINT} to fetch {name}: "
                "check the network connection (or HF_ENDPOINT); run again to resume"
            ) from None
        except HfHubHTTPError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CliError(f"the hub refused {repo}/{name}@{revision}: {first}") from None
    info(f"downloaded {repo}@{revision} into {directory}")
    if verify:
        from xtts_cli.checkpoint_check import check_files
        from xtts_cli.model_files import ModelSource

        summary = check_files(ModelSource(directory).files())
        info(f"checked {directory}: {summary['parameters']:,} parameters, all tensors fit")
