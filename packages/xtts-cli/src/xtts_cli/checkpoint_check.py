"""Checking a checkpoint folder by loading it: what ``xtts model check`` reports and what
``xtts model download`` runs on the files it fetched.

The load on cpu runs every check of xtts-core's loader (config parses, every tensor fits it);
on top, every floating-point weight must be finite. The summary is plain JSON-ready data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xtts_cli.errors import CliError

if TYPE_CHECKING:
    from xtts_cli.model_files import ModelFiles


def check_files(files: ModelFiles) -> dict[str, Any]:
    """Load the checkpoint on cpu (every check of the loader) and look for NaN/inf weights."""
    import torch

    from xtts_core.loader import load_checkpoint

    loaded = load_checkpoint(files.checkpoint_files(), "cpu")
    for name, tensor in loaded.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CliError(f"{files.model}: tensor {name} holds NaN or infinite values")
    gpt = loaded.config.gpt
    return {
        "model": str(files.model),
        "files": {key: str(path) for key, path in vars(files).items() if path is not None},
        "gpt": {
            "layers": gpt.layers,
            "width": gpt.width,
            "heads": gpt.heads,
            "text_tokens": gpt.number_text_tokens,
            "audio_tokens": gpt.num_audio_tokens,
        },
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "sample_rate": loaded.config.decoder.output_sample_rate,
        "languages": list(loaded.tokenizer.languages),
        "speakers": sorted(loaded.speakers),
        "size_bytes": sum(p.stat().st_size for p in vars(files).values() if p is not None),
    }
