"""Load an XTTS checkpoint (released layout or a fine-tune's) safely, without coqui installed.

What it handles, because real checkpoints differ:
- ``model.pth`` whose ``"config"`` entry is a pickled coqui ``XttsConfig`` object. It is read with
  torch's ``weights_only`` unpickler, which runs no pickled code; the known coqui config classes
  are mapped to an inert placeholder and any other global is refused with :class:`UnsafeCheckpointError`.
- both HiFi-GAN weight-norm namings (``parametrizations.weight.original0/1`` and ``weight_g/_v``),
  folded into plain weights;
- the ``xtts.`` prefix of GPT-trainer checkpoints, trainer-only modules (dvae, mel extractors,
  ``text_head``) and stale buffers of old transformers versions, dropped;
The user's files are never written (coqui 0.28 rewrites ``model.pth`` in place; we do not).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtts_core._extras import require_inference

require_inference("xtts_core.checkpoint")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.config import XttsConfig  # noqa: E402
from xtts_core.errors import CheckpointError, UnsafeCheckpointError  # noqa: E402
from xtts_core.model.weight_norm import fold_weight_norm  # noqa: E402

logger = logging.getLogger(__name__)

#: Pickled coqui classes found in released checkpoints; each is rebuilt as an inert placeholder.
COQUI_CONFIG_CLASSES = (
    "TTS.tts.configs.xtts_config.XttsConfig",
    "TTS.tts.models.xtts.XttsArgs",
    "TTS.tts.models.xtts.XttsAudioConfig",
    "TTS.config.shared_configs.BaseDatasetConfig",
    "TTS.config.shared_configs.BaseAudioConfig",
)
_TRAINER_PREFIXES = ("torch_mel_spectrogram_style_encoder.", "torch_mel_spectrogram_dvae.", "dvae.")
_DROPPED = re.compile(
    r"^gpt\.(text_head\.|gpt_inference\.|gpt\.wte\.|gpt\.wpe\.|gpt\.h\.\d+\.attn\.(bias|masked_bias)$)"
)
_IGNORED_FILES = ("dvae.pth", "mel_stats.pth")


class PickledConfigPlaceholder:
    """Stands in for a pickled coqui config object; keeps its attributes as plain data."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


def _placeholder_globals() -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    return [
        (type(name.rsplit(".", 1)[1], (PickledConfigPlaceholder,), {}), name)
        for name in COQUI_CONFIG_CLASSES
    ]


@dataclass(frozen=True)
class CheckpointFiles:
    """Paths of one checkpoint; ``speakers`` is optional."""

    config: Path
    model: Path
    vocab: Path
    speakers: Path | None = None

    @classmethod
    def from_dir(cls, directory: str | Path) -> CheckpointFiles:
        """The released layout: config.json, model.pth, vocab.json, optional speakers_xtts.pth."""
        d = Path(directory)
        if not d.is_dir():
            raise CheckpointError(f"model directory not found: {d}")
        for name in _IGNORED_FILES:
            if (d / name).exists():
                logger.debug("ignoring %s: only GPT training uses it", d / name)
        speakers = d / "speakers_xtts.pth"
        has_speakers = speakers.exists()
        return cls(
            d / "config.json", d / "model.pth", d / "vocab.json", speakers if has_speakers else None
        )

    def check(self) -> None:
        """Fail early, naming the first missing file."""
        for path in (self.config, self.model, self.vocab, self.speakers):
            if path is not None and not path.is_file():
                raise CheckpointError(f"checkpoint file not found: {path}")


def read_model_file(path: Path) -> dict[str, Any]:
    """Unpickle ``model.pth`` with the weights-only unpickler plus inert coqui config classes."""
    try:
        with torch.serialization.safe_globals(_placeholder_globals()):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except pickle.UnpicklingError as exc:
        detail = _first_line(exc)
        if "GLOBAL" not in detail:  # a corrupt pickle stream, not a refused class
            raise CheckpointError(f"cannot read {path} as a torch checkpoint: {detail}") from None
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it asks for code outside the allow-list ({detail})"
        ) from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(
            f"cannot read {path} as a torch checkpoint: {_first_line(exc)}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} is not an XTTS checkpoint (top level is {type(obj).__name__})"
        )
    return obj


def extract_state_dict(checkpoint: Mapping[str, Any], source: Path) -> dict[str, Tensor]:
    """The model weights of a checkpoint, in our module layout (see the module docstring)."""
    raw = checkpoint.get("model", checkpoint)
    if not isinstance(raw, Mapping) or not any(
        str(k).removeprefix("xtts.").startswith("gpt.") for k in raw
    ):
        raise CheckpointError(f"{source} is not an XTTS checkpoint: it has no 'gpt.*' weights")
    state: dict[str, Tensor] = {}
    for key, value in raw.items():
        key = key.removeprefix("xtts.")
        if key.startswith(_TRAINER_PREFIXES) or _DROPPED.match(key):
            continue
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{source}: entry {key!r} is not a tensor")
        state[key] = value
    try:
        state = fold_weight_norm(state)
    except KeyError as exc:
        raise CheckpointError(f"{source}: {exc.args[0]}") from None
    return state


def check_shapes(expected: Mapping[str, Tensor], state: Mapping[str, Tensor], source: Path) -> None:
    """Raise one readable error listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if wrong:
        problems.append(
            "shape mismatch: " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else "")
        )
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise CheckpointError(f"{source} does not fit its config.json: " + "; ".join(problems))


def read_config(files: CheckpointFiles, vocab_size: int, start_id: int, stop_id: int) -> XttsConfig:
    """config.json with the text vocabulary sized from vocab.json, as the reference does."""
    return XttsConfig.from_json_file(files.config).with_text_vocab(vocab_size, start_id, stop_id)


def read_speakers(path: Path) -> dict[str, dict[str, Tensor]]:
    """``speakers_xtts.pth``: name -> {"gpt_cond_latent", "speaker_embedding"} (weights only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(f"refusing to load {path}: {_first_line(exc)}") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read speakers file {path}: {_first_line(exc)}") from None
    if not isinstance(obj, dict) or not all(
        isinstance(v, dict) and {"gpt_cond_latent", "speaker_embedding"} <= v.keys()
        for v in obj.values()
    ):
        raise CheckpointError(
            f"{path} is not a speakers file: expected name -> {{gpt_cond_latent, speaker_embedding}}"
        )
    return obj


def _first_line(exc: BaseException) -> str:
    inner = exc.__context__ if isinstance(exc, pickle.UnpicklingError) else None  # torch's detail
    text = str(inner or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
