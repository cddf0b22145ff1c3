"""Typed view of an XTTS ``config.json`` (torch-free).

The released config.json is a dump of coqui's whole trainer config: most keys are irrelevant to
inference, and two of them hold the non-standard JSON token ``Infinity``. We read it with Python's
``json`` (which accepts ``Infinity``), keep only what inference needs, and fall back to coqui's
``XttsArgs`` class defaults for keys a fine-tune's config may omit. Every size and token id the
model uses comes from here, never from constants: the released model has 1026 audio codes, some
community fine-tunes 8194.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xtts_core.errors import CheckpointError

#: The 17 languages of the released XTTS-v2, in the order of its config.json.
XTTS_V2_LANGUAGES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "hu", "ko",
    "ja", "hi",
)  # fmt: skip


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GPTConfig(_Frozen):
    """Sizes and special ids of the autoregressive GPT (``model_args.gpt_*``)."""

    layers: int = Field(30, ge=1)
    width: int = Field(1024, ge=8)
    heads: int = Field(16, ge=1)
    number_text_tokens: int | None = Field(None, ge=1)
    start_text_token: int | None = None
    stop_text_token: int | None = None
    num_audio_tokens: int = Field(8194, ge=3)
    start_audio_token: int = 8192
    stop_audio_token: int = 8193
    max_audio_tokens: int = Field(605, ge=4)
    max_text_tokens: int = Field(402, ge=2)
    code_stride_len: int = Field(1024, ge=1)
    use_perceiver_resampler: bool = False
    num_conditioning_latents: int = 32

    @property
    def text_positions(self) -> int:
        """Rows of the text position table: the text plus ``[START]`` and ``[STOP]``."""
        return self.max_text_tokens + 2

    @property
    def audio_positions(self) -> int:
        """Rows of the audio position table (coqui: max_audio_tokens + 2 + 1 conditioning input)."""
        return self.max_audio_tokens + 3

    @property
    def max_new_codes(self) -> int:
        """Most codes one sentence may generate (coqui's ``max_gen_mel_tokens``)."""
        return self.max_audio_tokens - 3


class DecoderConfig(_Frozen):
    """HiFi-GAN decoder and speaker-encoder settings (``model_args``)."""

    input_sample_rate: int = 22050
    output_sample_rate: int = 24000
    output_hop_length: int = 256
    decoder_input_dim: int = 1024
    d_vector_dim: int = 512
    cond_d_vector_in_each_upsampling_layer: bool = True


class SamplingDefaults(_Frozen):
    """Sampling settings (top level of config.json); used when a caller does not choose."""

    temperature: float = 0.75
    length_penalty: float = 1.0
    repetition_penalty: float = 10.0
    top_k: int = 50
    top_p: float = 0.85


class ConditioningDefaults(_Frozen):
    """Voice-cloning settings (top level of config.json), in seconds."""

    gpt_cond_len: float = 30
    gpt_cond_chunk_len: float = 4
    max_ref_len: float = 30
    sound_norm_refs: bool = False


class XttsConfig(_Frozen):
    """Everything inference needs from an XTTS config.json."""

    gpt: GPTConfig
    decoder: DecoderConfig
    sampling: SamplingDefaults
    conditioning: ConditioningDefaults
    languages: tuple[str, ...] = XTTS_V2_LANGUAGES
    sample_rate: int = 22050
    output_sample_rate: int = 24000

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> XttsConfig:
        """Build from the parsed JSON of a coqui config (trainer keys are ignored)."""
        args = raw.get("model_args") or {}
        audio = raw.get("audio") or {}
        gpt = {key.removeprefix("gpt_"): value for key, value in args.items()}
        gpt["width"] = args.get("gpt_n_model_channels", 1024)
        gpt["layers"] = args.get("gpt_layers", 30)
        gpt["heads"] = args.get("gpt_n_heads", 16)
        gpt = {k: v for k, v in gpt.items() if v is not None}
        top = {k: v for k, v in raw.items() if v is not None and not _is_infinite(v)}
        fields: dict[str, Any] = {
            "gpt": gpt,
            "decoder": args,
            "sampling": top,
            "conditioning": top,
            "sample_rate": audio.get("sample_rate", 22050),
            "output_sample_rate": audio.get("output_sample_rate", 24000),
        }
        if raw.get("languages"):
            fields["languages"] = tuple(raw["languages"])
        return cls.model_validate(fields)

    @classmethod
    def from_json_file(cls, path: str | Path) -> XttsConfig:
        """Read a config.json (``Infinity`` allowed); errors name the file."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read config file {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"config file {path} does not hold a JSON object")
        try:
            return cls.from_dict(raw)
        except ValidationError as exc:
            raise CheckpointError(f"invalid XTTS config in {path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Serialise in coqui's config.json layout (what :meth:`from_dict` reads back)."""
        g = self.gpt
        model_args = {
            "gpt_layers": g.layers,
            "gpt_n_model_channels": g.width,
            "gpt_n_heads": g.heads,
            "gpt_number_text_tokens": g.number_text_tokens,
            "gpt_start_text_token": g.start_text_token,
            "gpt_stop_text_token": g.stop_text_token,
            "gpt_num_audio_tokens": g.num_audio_tokens,
            "gpt_start_audio_token": g.start_audio_token,
            "gpt_stop_audio_token": g.stop_audio_token,
            "gpt_max_audio_tokens": g.max_audio_tokens,
            "gpt_max_text_tokens": g.max_text_tokens,
            "gpt_max_prompt_tokens": 70,
            "gpt_code_stride_len": g.code_stride_len,
            "gpt_use_perceiver_resampler": g.use_perceiver_resampler,
            "gpt_batch_size": 1,
            "kv_cache": True,
            "tokenizer_file": "",
            **self.decoder.model_dump(),
        }
        return {
            "model": "xtts",
            "model_args": model_args,
            "audio": {
                "sample_rate": self.sample_rate,
                "output_sample_rate": self.output_sample_rate,
            },
            "languages": list(self.languages),
            **self.sampling.model_dump(),
            **self.conditioning.model_dump(),
            "num_gpt_outputs": 1,
        }

    def with_text_vocab(self, size: int, start_id: int, stop_id: int) -> XttsConfig:
        """Return a copy whose text vocabulary comes from vocab.json, as coqui does at load time."""
        gpt = self.gpt.model_copy(
            update={
                "number_text_tokens": size,
                "start_text_token": start_id,
                "stop_text_token": stop_id,
            }
        )
        return self.model_copy(update={"gpt": gpt})


def _is_infinite(value: Any) -> bool:
    return isinstance(value, float) and math.isinf(value)
