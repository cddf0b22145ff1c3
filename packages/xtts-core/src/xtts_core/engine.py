"""The public inference API: load a checkpoint once, then clone voices, synthesise and stream.

:class:`XttsEngine` holds only read-only things (weights, tokenizer, config, named speakers, the
voice cache). Each call builds its own :class:`~xtts_core.generate.CodeStream` and
:class:`~xtts_core.stream.IncrementalVocoder`, so several threads may stream from one engine at
once (each at its own pace; batching them into one step comes with the worker engine).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.engine")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.checkpoint import CheckpointFiles  # noqa: E402
from xtts_core.errors import ParameterError, TextError, XttsError  # noqa: E402
from xtts_core.generate import CodeStream, SamplingParams  # noqa: E402
from xtts_core.loader import LoadedCheckpoint, load_checkpoint  # noqa: E402
from xtts_core.stream import IncrementalVocoder, apply_speed, speed_scale  # noqa: E402
from xtts_core.text.split import split_sentences  # noqa: E402
from xtts_core.voice import (  # noqa: E402
    CloneSettings,
    Voice,
    VoiceCache,
    audio_fingerprint,
    clone_voice_from_files,
    model_fingerprint,
)

logger = logging.getLogger(__name__)

#: Length of the linear fade at each join between segments of a long text.
JOIN_FADE_S = 0.005


@dataclass(frozen=True)
class StreamOptions:
    """Chunking of a streamed sentence, in audio codes (one code = 46.4 ms of audio).

    The first chunk is vocoded after ``first_chunk_codes`` codes so audio leaves early; each later
    chunk doubles in size up to ``chunk_codes`` (e.g. 6, 12, 20, 20, ...), so playback can start
    at once while the vocoder soon runs on fewer, larger windows. In the default exact mode the
    newest ~3.5 codes are held back until their right context exists, so the first chunk carries
    ``first_chunk_codes - 3.5`` codes of audio. ``lookahead_frames``/``overlap_samples`` trade
    that exactness for latency (see ``stream.py``). ``denoise`` runs ``noisereduce`` on each
    chunk (off by default: it changes the audio).
    """

    first_chunk_codes: int = 6
    chunk_codes: int = 20
    lookahead_frames: int | None = None
    overlap_samples: int = 0
    denoise: bool = False

    def __post_init__(self) -> None:
        if self.first_chunk_codes < 1 or self.chunk_codes < 1:
            raise ParameterError("first_chunk_codes and chunk_codes must be >= 1")


@dataclass
class AudioChunk:
    """Samples of one streamed chunk (float32, mono, ``sample_rate`` Hz) with its timing."""

    samples: np.ndarray
    sample_rate: int
    index: int
    codes_so_far: int
    is_final: bool
    elapsed_s: float


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
        return CodeStream(self.model.gpt, voice.gpt_cond_latent, ids, params)

    def segments(self, text: str, language: str, split_text: bool = True) -> list[str]:
        """The pieces ``text`` is spoken in: sentences packed up to the language's character limit
        (one piece when the text is short or ``split_text`` is off). Every piece is tokenised
        here, so a bad language or a piece over the token limit fails before any audio is made.
        """
        self.tokenizer.check_language(language)
        pieces = split_sentences(text, language) if split_text else [text]
        if not pieces:
            raise TextError("text is empty: there is nothing to speak")
        for piece in pieces:
            self.tokenizer.encode(piece, language)
        return pieces

    @torch.inference_mode()
    def synthesize(
        self, text: str, language: str, voice: Voice, params: SamplingParams | None = None,
        speed: float = 1.0, split_text: bool = True,
    ) -> Synthesis:  # fmt: skip
        """Speak ``text`` at once: per segment all codes, then one vocoder pass over its latents."""
        pieces = self.segments(text, language, split_text)
        fade = self._join_fade()
        wavs, codes, latents = [], [], []
        for i, piece in enumerate(pieces):
            part = self._synthesize_piece(piece, language, voice, params or SamplingParams(), speed)
            wavs.append(_fade_joins(part.wav, 0, fade, i > 0, i < len(pieces) - 1))
            codes += part.codes
            latents.append(part.latents)
        return Synthesis(np.concatenate(wavs), self.sample_rate, codes, torch.cat(latents))

    def _synthesize_piece(
        self, text: str, language: str, voice: Voice, params: SamplingParams, speed: float
    ) -> Synthesis:
        scale = speed_scale(speed)
        stream = self.code_stream(text, language, voice, params)
        latents = torch.stack([latent for _, latent in stream])  # (T, C)
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
        options = options or StreamOptions()
        t0 = time.perf_counter()
        pieces = self.segments(text, language, split_text)
        fade = self._join_fade()
        index = count = 0
        for i, piece in enumerate(pieces):
            last_piece, offset = i == len(pieces) - 1, 0
            for samples, codes, final in self._stream_piece(
                piece, language, voice, params, speed, options
            ):
                data = samples.cpu().numpy().astype(np.float32)
                data = _fade_joins(data, offset, fade, i > 0, final and not last_piece)
                offset += data.size
                if data.size == 0 and not (final and last_piece):
                    continue
                if options.denoise and data.size:
                    data = _denoise(data, self.sample_rate)
                elapsed = time.perf_counter() - t0
                yield AudioChunk(
                    data, self.sample_rate, index, count + codes, final and last_piece, elapsed
                )
                index += 1
            count += codes

    def _stream_piece(
        self, text: str, language: str, voice: Voice, params: SamplingParams | None, speed: float,
        options: StreamOptions,
    ) -> Iterator[tuple[Tensor, int, bool]]:  # fmt: skip
        """``(samples, codes so far, is_last)`` for one segment, in the chunking of ``options``."""
        codes = self.code_stream(text, language, voice, params or SamplingParams())
        vocoder = IncrementalVocoder(
            self.model.hifigan_decoder, voice.speaker_embedding.to(self.model.device), speed,
            options.lookahead_frames, options.overlap_samples,
        )  # fmt: skip
        size = options.first_chunk_codes
        due, count = size, 0
        for _, latent in codes:
            vocoder.push(latent)
            count += 1
            if count >= due:
                size = min(2 * size, options.chunk_codes)
                due += size
                yield vocoder.pull(), count, False
        yield vocoder.pull(final=True), count, True

    def _join_fade(self) -> int:
        return int(JOIN_FADE_S * self.sample_rate)


def _fade_joins(
    samples: np.ndarray, start: int, n: int, fade_in: bool, fade_out: bool
) -> np.ndarray:
    """Ramp a segment's first ``n`` samples up and (when this is its last chunk) its last ``n``
    down, so segments joined end to end never click. ``start`` is the chunk's offset in its
    segment; the ramps are per sample, so chunked and whole-segment fading agree."""
    if not (fade_in and start < n) and not fade_out:
        return samples
    out = samples.copy()
    if fade_in and start < n:
        k = min(n - start, out.size)
        out[:k] *= np.arange(start, start + k, dtype=np.float32) / n
    if fade_out:
        k = min(n, out.size)
        out[out.size - k :] *= np.arange(k - 1, -1, -1, dtype=np.float32) / n
    return out


def _denoise(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Stationary spectral gating of one chunk; the STFT shrinks to fit short chunks."""
    import noisereduce  # imported lazily: it pulls scipy and is off by default

    n_fft = min(1024, 1 << (samples.size.bit_length() - 1))  # largest power of two that fits
    if n_fft < 64:  # too short to estimate a spectrum: leave it as it is
        return samples
    out: np.ndarray = noisereduce.reduce_noise(
        y=samples, sr=sample_rate, stationary=True, n_fft=n_fft
    )
    return out.astype(np.float32)
