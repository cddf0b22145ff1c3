"""The public inference API: load a checkpoint once, then clone voices, synthesise and stream.

:class:`XttsEngine` holds only read-only things (weights, tokenizer, config, named speakers, the
voice cache) and the thread-safe :class:`~xtts_core.kv_cache.PrefixCache` of the voices'
conditioning keys and values, which every sentence of a voice after its first reuses instead of
prefilling them. Each call builds its own :class:`~xtts_core.generate.CodeStream` and
:class:`~xtts_core.chunking.ChunkedSpeech`, so several threads may stream from one engine at once,
each at its own pace; :class:`~xtts_core.scheduler.BatchScheduler` instead runs many streams'
decode steps as one batch.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.engine")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.checkpoint import CheckpointFiles  # noqa: E402
from xtts_core.chunking import (  # noqa: E402
    JOIN_FADE_S,
    AudioChunk,
    ChunkedSpeech,
    StreamOptions,
    _fade_joins,
)
from xtts_core.errors import TextError, XttsError  # noqa: E402
from xtts_core.generate import CodeStream, SamplingParams  # noqa: E402
from xtts_core.kv_cache import PrefixCache  # noqa: E402
from xtts_core.loader import LoadedCheckpoint, load_checkpoint  # noqa: E402
from xtts_core.stream import apply_speed, speed_scale  # noqa: E402
from xtts_core.text.split import split_sentences  # noqa: E402
from xtts_core.voice import (  # noqa: E402
    CloneSettings,
    Voice,
    VoiceCache,
    audio_fingerprint,
    clone_voice_from_files,
    model_fingerprint,
)

__all__ = ["AudioChunk", "ProgressCallback", "StreamOptions", "Synthesis", "XttsEngine"]

logger = logging.getLogger(__name__)

#: ``on_code(segment, segments, codes)``: progress of :meth:`XttsEngine.synthesize`.
ProgressCallback = Callable[[int, int, int], None]


@dataclass
class Synthesis:
    """One-shot result: the waveform plus what produced it."""

    wav: np.ndarray
    sample_rate: int
    codes: list[int]
    latents: Tensor = field(repr=False)


class XttsEngine:
    """A loaded XTTS model ready to speak."""

    def __init__(self, checkpoint: LoadedCheckpoint, voice_cache: VoiceCache | None = None) -> None:
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.tokenizer = checkpoint.tokenizer
        self.config = checkpoint.config
        self.voice_cache = voice_cache or VoiceCache()
        self.prefix_cache = PrefixCache()
        self.clone_settings = CloneSettings.from_config(self.config.conditioning)
        self._model_id = model_fingerprint(self.model)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path | CheckpointFiles,
        device: str | None = None,
        dtype: str = "fp32",
        voice_cache_dir: str | Path | None = None,
    ) -> XttsEngine:
        """Load a checkpoint directory (or explicit files) on ``device`` (default: cuda if present)."""
        return cls(load_checkpoint(model_dir, device, dtype), VoiceCache(directory=voice_cache_dir))

    @property
    def sample_rate(self) -> int:
        """Output rate of the audio (24000 for XTTS-v2)."""
        return self.config.decoder.output_sample_rate

    @property
    def languages(self) -> tuple[str, ...]:
        return self.tokenizer.languages

    @property
    def speakers(self) -> tuple[str, ...]:
        """Names of the voices in the checkpoint's speakers_xtts.pth."""
        return tuple(self.checkpoint.speakers)

    def speaker(self, name: str) -> Voice:
        """A named voice from speakers_xtts.pth."""
        if name not in self.checkpoint.speakers:
            known = ", ".join(self.speakers) or "none (no speakers_xtts.pth)"
            raise XttsError(f"unknown speaker {name!r}; known speakers: {known}")
        return Voice.from_entry(name, self.checkpoint.speakers[name])

    def clone_voice(
        self,
        paths: Sequence[str | Path],
        settings: CloneSettings | None = None,
        name: str = "voice",
    ) -> Voice:
        """Clone from reference files, through the voice cache (keyed by content and settings)."""
        settings = settings or self.clone_settings
        key = VoiceCache.key(self._model_id, audio_fingerprint(paths), settings)
        voice = self.voice_cache.get(key)
        if voice is None:
            voice = clone_voice_from_files(self.model, paths, settings, name)
            self.voice_cache.put(key, voice)
        return voice

    def code_stream(
        self, text: str, language: str, voice: Voice, params: SamplingParams
    ) -> CodeStream:
        """The GPT alone for one segment: iterate it for ``(code, latent)`` pairs (no audio)."""
        ids = self.tokenizer.encode(text, language)
        return CodeStream(self.model.gpt, voice.gpt_cond_latent, ids, params, self.prefix_cache)

    def segments(
        self, text: str, language: str, split_text: bool = True, *, normalize: bool = True
    ) -> list[str]:
        """The pieces ``text`` is spoken in: sentences packed up to the language's character limit
        (one piece when the text is short or ``split_text`` is off). Every piece is tokenised
        here, so a bad language or a piece over the token limit fails before any audio is made.
        """
        self.tokenizer.check_language(language)
        pieces = split_sentences(text, language) if split_text else [text]
        if not pieces:
            raise TextError("text is empty: there is nothing to speak")
        for piece in pieces:
            self.tokenizer.encode(piece, language, normalize=normalize)
        return pieces

    @torch.inference_mode()
    def synthesize(
        self, text: str, language: str, voice: Voice, params: SamplingParams | None = None,
        speed: float = 1.0, split_text: bool = True, on_code: ProgressCallback | None = None,
    ) -> Synthesis:  # fmt: skip
        """Speak ``text`` at once: per segment all codes, then one vocoder pass over its latents.

        ``on_code(segment, segments, codes)`` is called after each code (``codes`` counts within
        the segment), so a caller can show progress on a long text.
        """
        pieces = self.segments(text, language, split_text)
        fade = self._join_fade()
        wavs, codes, latents = [], [], []
        for i, piece in enumerate(pieces):
            report = None if on_code is None else functools.partial(on_code, i, len(pieces))
            part = self._synthesize_piece(
                piece, language, voice, params or SamplingParams(), speed, report
            )
            wavs.append(_fade_joins(part.wav, 0, fade, i > 0, i < len(pieces) - 1))
            codes += part.codes
            latents.append(part.latents)
        return Synthesis(np.concatenate(wavs), self.sample_rate, codes, torch.cat(latents))

    def _synthesize_piece(
        self, text: str, language: str, voice: Voice, params: SamplingParams, speed: float,
        on_code: Callable[[int], None] | None = None,
    ) -> Synthesis:  # fmt: skip
        scale = speed_scale(speed)
        stream = self.code_stream(text, language, voice, params)
        steps = []
        for n, (_, latent) in enumerate(stream, 1):
            steps.append(latent)
            if on_code is not None:
                on_code(n)
        latents = torch.stack(steps)  # (T, C)
        if math.floor(latents.shape[0] * scale) == 0:  # e.g. one code at speed > 1: no audio
            return Synthesis(np.zeros(0, np.float32), self.sample_rate, stream.codes, latents.cpu())
        stretched = apply_speed(latents, scale)
        g = voice.speaker_embedding.to(self.model.device)
        wav = self.model.hifigan_decoder(stretched[None].to(self.model.device), g)[0, 0]
        return Synthesis(wav.float().cpu().numpy(), self.sample_rate, stream.codes, latents.cpu())

    def stream(
        self, text: str, language: str, voice: Voice, params: SamplingParams | None = None,
        speed: float = 1.0, options: StreamOptions | None = None, split_text: bool = True,
    ) -> Iterator[AudioChunk]:  # fmt: skip
        """Speak ``text`` as chunks of audio, each yielded as soon as it is final.

        Segments follow each other without a gap; ``is_final`` marks the last chunk of the text.
        """
        pieces = self.segments(text, language, split_text)
        speech = self.chunked_speech(voice, len(pieces), speed, options)
        for piece in pieces:
            speech.begin_segment()
            for _, latent in self.code_stream(piece, language, voice, params or SamplingParams()):
                chunk = speech.push(latent)
                if chunk is not None:
                    yield chunk
            chunk = speech.end_segment()
            if chunk is not None:
                yield chunk

    def chunked_speech(
        self, voice: Voice, segments: int, speed: float = 1.0, options: StreamOptions | None = None
    ) -> ChunkedSpeech:
        """The audio assembler of one streamed text of ``segments`` segments (see ``chunking``)."""
        return ChunkedSpeech(
            self.model.hifigan_decoder, voice.speaker_embedding.to(self.model.device),
            self.sample_rate, segments, speed, options or StreamOptions(),
        )  # fmt: skip

    def _join_fade(self) -> int:
        return int(JOIN_FADE_S * self.sample_rate)
