"""Write randomly initialised XTTS checkpoints in the released file layout.

Real weights cannot be downloaded where tests and benchmarks run, so they use these: the real
architecture at any size, written exactly as coqui writes a checkpoint (config.json with
``Infinity`` values, model.pth with coqui's key names and HF ``Conv1D`` layout, weight-normed
HiFi-GAN, vocab.json, speakers_xtts.pth), and loaded through the same path real weights take.
The legacy variants seen in the wild can be written too: a pickled coqui config object, the
``weight_g/weight_v`` naming, and the GPT trainer's ``xtts.`` prefix with trainer-only modules.
Random weights make noise, not speech.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xtts_core._extras import require_inference

require_inference("xtts_core.random_checkpoint")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from xtts_core.config import (  # noqa: E402
    ConditioningDefaults,
    DecoderConfig,
    GPTConfig,
    SamplingDefaults,
    XttsConfig,
)
from xtts_core.model.weight_norm import unfold_weight_norm  # noqa: E402
from xtts_core.model.xtts import XttsModel  # noqa: E402
from xtts_core.text.tokenizer import XttsTokenizer  # noqa: E402
from xtts_core.text.vocab import write_vocab  # noqa: E402

Size = Literal["tiny", "mid", "release"]


@dataclass(frozen=True)
class SizePreset:
    """GPT sizes and vocabulary size of a preset (the decoder is always the released one)."""

    layers: int
    width: int
    heads: int
    vocab: int


SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(layers=2, width=64, heads=4, vocab=300),
    "mid": SizePreset(layers=4, width=256, heads=8, vocab=1000),
    "release": SizePreset(layers=30, width=1024, heads=16, vocab=6681),
}


def release_config(
    size: Size = "release", vocab_size: int | None = None, audio_tokens: int = 1026
) -> XttsConfig:
    """The released XTTS-v2 config (xtts-reference.md §1.2) with the GPT sized by ``size``.

    ``audio_tokens`` is 1026 for XTTS-v2 (start 1024, stop 1025); some community fine-tunes use
    8194 (start 8192, stop 8193).
    """
    preset = SIZES[size]
    gpt = GPTConfig(
        layers=preset.layers, width=preset.width, heads=preset.heads,
        number_text_tokens=vocab_size or preset.vocab, num_audio_tokens=audio_tokens,
        start_audio_token=audio_tokens - 2, stop_audio_token=audio_tokens - 1, max_audio_tokens=605,
        max_text_tokens=402, code_stride_len=1024, use_perceiver_resampler=True,
    )  # fmt: skip
    return XttsConfig(
        gpt=gpt,
        decoder=DecoderConfig(decoder_input_dim=preset.width),
        sampling=SamplingDefaults(repetition_penalty=5.0),
        conditioning=ConditioningDefaults(gpt_cond_len=30, gpt_cond_chunk_len=4, max_ref_len=30),
    )


def write_random_checkpoint(
    directory: str | Path,
    size: Size = "tiny",
    *,
    seed: int = 0,
    speakers: tuple[str, ...] = ("Random Speaker", "Other Speaker"),
    weight_norm: Literal["parametrizations", "legacy"] = "parametrizations",
    pickled_config: bool = False,
    trainer_prefix: bool = False,
    training_files: bool = False,
    audio_tokens: int = 1026,
) -> Path:
    """Write config.json, model.pth, vocab.json and speakers_xtts.pth into ``directory``.

    Args:
        directory: created if missing.
        size: ``tiny`` (fast tests), ``mid`` (parity), ``release`` (benchmarks; ~1.9 GB).
        seed: the torch seed for every random tensor.
        speakers: names written to speakers_xtts.pth.
        weight_norm: HiFi-GAN naming, ``parametrizations`` (coqui >= 0.20) or ``legacy``.
        pickled_config: store ``"config"`` as a pickled coqui ``XttsConfig`` object (the released
            file's form, which ``torch.load(weights_only=True)`` refuses) instead of a dict.
        trainer_prefix: prefix every key with ``xtts.`` and add trainer-only dvae weights.
        training_files: also write dvae.pth and mel_stats.pth (inference ignores them).
        audio_tokens: size of the audio-code vocabulary (1026 released; 8194 in some fine-tunes).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_vocab(out / "vocab.json", SIZES[size].vocab)
    tok = XttsTokenizer.from_file(out / "vocab.json")
    cfg = release_config(size, audio_tokens=audio_tokens).with_text_vocab(
        tok.vocab_size, tok.special.start, tok.special.stop
    )
    raw_cfg = cfg.to_dict() | {"max_audio_len": float("inf"), "max_text_len": float("inf")}
    (out / "config.json").write_text(json.dumps(raw_cfg, indent=2), encoding="utf-8")

    torch.manual_seed(seed)
    model = XttsModel(cfg)
    _randomise(model)
    state = coqui_state_dict(model, weight_norm)
    if trainer_prefix:
        state = {f"xtts.{k}": v for k, v in state.items()}
        state["xtts.dvae.codebook.embed"] = torch.randn(1024, 512)
        state["xtts.torch_mel_spectrogram_dvae.mel_stft.spectrogram.window"] = torch.hann_window(
            1024
        )
    config_entry: Any = _pickled_config(raw_cfg) if pickled_config else raw_cfg
    with _fake_coqui_modules() if pickled_config else _nothing():
        torch.save({"config": config_entry, "model": state}, out / "model.pth")

    width = cfg.gpt.width
    voices = {
        name: {
            "gpt_cond_latent": torch.randn(1, cfg.gpt.num_conditioning_latents, width),
            "speaker_embedding": F.normalize(
                torch.randn(1, cfg.decoder.d_vector_dim), dim=1
            ).unsqueeze(-1),
        }
        for name in speakers
    }
    torch.save(voices, out / "speakers_xtts.pth")
    if training_files:
        torch.save({"encoder.weight": torch.randn(8, 8)}, out / "dvae.pth")
        torch.save(torch.ones(80), out / "mel_stats.pth")
    return out


def coqui_state_dict(model: XttsModel, weight_norm: str = "parametrizations") -> dict[str, Tensor]:
    """Our weights in coqui's layout: weight-normed HiFi-GAN and the training-only ``text_head``."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    prefix = "hifigan_decoder.waveform_decoder."
    normed = [prefix + k for k in model.hifigan_decoder.waveform_decoder.weight_normed_keys()]
    state = unfold_weight_norm(state, normed, weight_norm)  # type: ignore[arg-type]
    n_text, width = model.gpt.text_embedding.weight.shape
    state["gpt.text_head.weight"] = torch.randn(n_text, width) * 0.02  # training only
    state["gpt.text_head.bias"] = torch.zeros(n_text)
    return state


@torch.no_grad()
def _randomise(model: XttsModel) -> None:
    """GPT-2-style init for the GPT, plus noise on norms so a swapped parameter shows in parity."""
    for name, p in model.gpt.named_parameters():
        if name.endswith(
            ("ln_1.weight", "ln_2.weight", "ln_f.weight", "final_norm.weight", "gamma")
        ) or name.endswith("norm.weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.02 * torch.randn_like(p))
        else:
            p.normal_(0.0, 0.02)
    for module in model.hifigan_decoder.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    model.mel_stats.uniform_(1.0, 4.0)


def _pickled_config(raw: dict[str, Any]) -> Any:
    """Rebuild the config dict as objects of coqui's (fake) classes for pickling."""
    cls = {name: _fake_class(name) for name in _FAKE_CLASSES}
    obj = cls["TTS.tts.configs.xtts_config.XttsConfig"]()
    obj.__dict__.update({k: v for k, v in raw.items() if k not in ("model_args", "audio")})
    obj.model_args = cls["TTS.tts.models.xtts.XttsArgs"]()
    obj.model_args.__dict__.update(raw["model_args"])
    obj.audio = cls["TTS.tts.models.xtts.XttsAudioConfig"]()
    obj.audio.__dict__.update(raw["audio"])
    dataset = cls["TTS.config.shared_configs.BaseDatasetConfig"]()
    dataset.__dict__.update({"formatter": "", "path": "", "language": ""})
    obj.datasets = [dataset]
    return obj


_FAKE_CLASSES = (
    "TTS.tts.configs.xtts_config.XttsConfig",
    "TTS.tts.models.xtts.XttsArgs",
    "TTS.tts.models.xtts.XttsAudioConfig",
    "TTS.config.shared_configs.BaseDatasetConfig",
)
_fake_class_cache: dict[str, type] = {}


def _fake_class(path: str) -> type:
    if path not in _fake_class_cache:
        module, name = path.rsplit(".", 1)
        _fake_class_cache[path] = type(name, (), {"__module__": module, "__qualname__": name})
    return _fake_class_cache[path]


@contextmanager
def _fake_coqui_modules() -> Iterator[None]:
    """Make ``TTS.*`` importable for pickle's class lookup while saving, then remove it."""
    added: list[str] = []
    for path in _FAKE_CLASSES:
        module_name, name = path.rsplit(".", 1)
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod not in sys.modules:
                sys.modules[mod] = types.ModuleType(mod)
                added.append(mod)
        if module_name in added:  # never touch a real coqui install
            setattr(sys.modules[module_name], name, _fake_class(path))
    try:
        yield
    finally:
        for mod in added:
            del sys.modules[mod]


@contextmanager
def _nothing() -> Iterator[None]:
    yield
