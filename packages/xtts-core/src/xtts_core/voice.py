"""Voices: cloning from reference audio, the :class:`Voice` value, and a voice cache.

A voice is what XTTS needs of a speaker: 32 GPT conditioning latents (1, 32, C) and a speaker
embedding (1, 512, 1) for the vocoder. Computing them costs ~0.5 s of CPU per clip, so voices are
values that can be saved (in the ``speakers_xtts.pth`` dict layout) and cached (in memory and
optionally on disk, keyed by the audio content, the cloning settings and the model's weights).

Cloning follows the reference ``get_conditioning_latents``: each clip is cut to ``max_ref_len``
seconds (optionally peak-normalised) and gives one speaker embedding (averaged over clips); the
clips are then concatenated, cut to ``gpt_cond_len`` seconds and split into ``gpt_cond_chunk_len``
chunks whose latents are averaged (chunks under 0.33 s are skipped).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.voice")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.audio import conditioning_log_mel, load_audio, resample  # noqa: E402
from xtts_core.config import ConditioningDefaults  # noqa: E402
from xtts_core.errors import AudioError, CheckpointError  # noqa: E402
from xtts_core.model.xtts import XttsModel  # noqa: E402

logger = logging.getLogger(__name__)

GPT_RATE = 22050
SPEAKER_RATE = 16000
MIN_CHUNK_SECONDS = 0.33
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class Voice:
    """A cloned or named voice: GPT conditioning latents and a speaker embedding."""

    gpt_cond_latent: Tensor  # (1, 32, C)
    speaker_embedding: Tensor  # (1, 512, 1)
    name: str = "voice"

    def to_dict(self) -> dict[str, Tensor]:
        """The speakers_xtts.pth entry: gpt latent first, as callers unpack ``.values()``."""
        return {
            "gpt_cond_latent": self.gpt_cond_latent.cpu(),
            "speaker_embedding": self.speaker_embedding.cpu(),
        }

    def save(self, path: str | Path) -> None:
        """Write ``{name: entry}`` — a one-voice speakers_xtts.pth."""
        torch.save({self.name: self.to_dict()}, Path(path))

    @classmethod
    def from_entry(cls, name: str, entry: dict[str, Tensor]) -> Voice:
        """Build from a speakers_xtts.pth entry, normalising the shapes callers store."""
        latent = entry["gpt_cond_latent"].float()
        emb = entry["speaker_embedding"].float()
        return cls(latent.reshape(1, -1, latent.shape[-1]), emb.reshape(1, -1, 1), name)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> Voice:
        """Read one voice from a speakers_xtts.pth-layout file (the first one when unnamed)."""
        path = Path(path)
        try:
            voices = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"voice file not found: {path}") from None
        except Exception as exc:
            raise CheckpointError(f"cannot read voice file {path}: {exc}") from None
        if not isinstance(voices, dict) or not voices:
            raise CheckpointError(f"{path} holds no voices")
        key = name if name is not None else next(iter(voices))
        if key not in voices:
            raise CheckpointError(f"voice {key!r} not in {path}; it has: {', '.join(voices)}")
        return cls.from_entry(key, voices[key])


@dataclass(frozen=True)
class CloneSettings:
    """Cloning lengths in seconds (defaults: the checkpoint config's, as coqui's ``synthesize``)."""

    gpt_cond_len: float = 30
    gpt_cond_chunk_len: float = 4
    max_ref_len: float = 30
    sound_norm_refs: bool = False

    @classmethod
    def from_config(cls, c: ConditioningDefaults) -> CloneSettings:
        return cls(c.gpt_cond_len, c.gpt_cond_chunk_len, c.max_ref_len, c.sound_norm_refs)

    def key(self) -> bytes:
        return struct.pack(
            "<dddB",
            self.gpt_cond_len,
            self.gpt_cond_chunk_len,
            self.max_ref_len,
            self.sound_norm_refs,
        )


@torch.inference_mode()
def clone_voice(
    model: XttsModel, clips: Sequence[Tensor], settings: CloneSettings, name: str = "voice"
) -> Voice:
    """Clone a voice from mono 22050 Hz clips (each (1, T) in [-1, 1])."""
    if not clips:
        raise AudioError("no reference audio given")
    device = model.device
    cut = [_prepare_clip(c, settings, i) for i, c in enumerate(clips)]
    embeddings = [speaker_embedding(model, c.to(device)) for c in cut]
    latents = gpt_latents(model, torch.cat(cut, dim=-1).to(device), settings)
    return Voice(latents.cpu(), torch.stack(embeddings).mean(dim=0).cpu(), name)


def clone_voice_from_files(
    model: XttsModel, paths: Sequence[str | Path], settings: CloneSettings, name: str = "voice"
) -> Voice:
    """Clone from audio files of any format soundfile reads, any rate, any channel count."""
    return clone_voice(model, [load_audio(p, GPT_RATE) for p in paths], settings, name)


def speaker_embedding(model: XttsModel, clip: Tensor) -> Tensor:
    """(1, 512, 1) L2-normalised embedding of a 22050 Hz clip, computed at 16 kHz."""
    audio_16k = resample(clip, GPT_RATE, SPEAKER_RATE)
    encoder = model.hifigan_decoder.speaker_encoder
    shortest = encoder.min_samples
    if audio_16k.shape[-1] < shortest:
        raise AudioError(
            f"reference clip too short ({clip.shape[-1] / GPT_RATE * 1000:.0f} ms): the speaker "
            f"encoder needs at least {shortest / SPEAKER_RATE * 1000:.0f} ms"
        )
    return encoder(audio_16k).unsqueeze(-1)


def gpt_latents(model: XttsModel, audio: Tensor, settings: CloneSettings) -> Tensor:
    """(1, 32, C) conditioning latents: mean over ``gpt_cond_chunk_len`` chunks of the audio."""
    if settings.gpt_cond_len > 0:
        audio = audio[:, : int(GPT_RATE * settings.gpt_cond_len)]
    step = int(GPT_RATE * settings.gpt_cond_chunk_len)
    if step <= 0:
        raise AudioError(
            f"gpt_cond_chunk_len must be > 0 seconds, got {settings.gpt_cond_chunk_len}"
        )
    chunks = [audio[:, i : i + step] for i in range(0, audio.shape[1], step)]
    chunks = [c for c in chunks if c.shape[-1] >= GPT_RATE * MIN_CHUNK_SECONDS]
    if not chunks:
        raise AudioError(f"reference audio too short: at least {MIN_CHUNK_SECONDS:.2f} s is needed")
    gpt = model.gpt
    latents = [gpt.conditioning_latents(conditioning_log_mel(c, model.mel_stats)) for c in chunks]
    return torch.stack(latents).mean(dim=0)


def _prepare_clip(clip: Tensor, settings: CloneSettings, index: int) -> Tensor:
    if clip.dim() != 2 or clip.shape[0] != 1:
        raise AudioError(f"reference clip {index} must have shape (1, T), got {tuple(clip.shape)}")
    clip = clip[:, : int(GPT_RATE * settings.max_ref_len)].float()
    peak = float(clip.abs().max()) if clip.numel() else 0.0
    if peak < SILENCE_PEAK:
        raise AudioError(f"reference clip {index} is silent (peak {peak:.1e}): nothing to clone")
    if settings.sound_norm_refs:
        clip = clip / peak * 0.75
    return clip


def audio_fingerprint(paths: Sequence[str | Path]) -> bytes:
    """SHA-256 over the bytes of each file, in order (the file names do not matter)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            h.update(Path(p).read_bytes())
        except OSError as exc:
            raise AudioError(f"cannot read reference audio {p}: {exc.strerror or exc}") from None
        h.update(b"\0")
    return h.digest()


def model_fingerprint(model: XttsModel) -> bytes:
    """A cheap content hash of the weights cloning depends on (cache entries are per model)."""
    h = hashlib.sha256()
    for t in (
        model.mel_stats,
        model.gpt.conditioning_encoder.init.weight,
        model.hifigan_decoder.speaker_encoder.fc.weight,
    ):
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.digest()


class VoiceCache:
    """Voices by content key: an in-memory LRU plus an optional directory of ``<key>.pth`` files."""

    def __init__(self, capacity: int = 64, directory: str | Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.directory = Path(directory) if directory is not None else None
        self._items: OrderedDict[str, Voice] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(model_id: bytes, audio_id: bytes, settings: CloneSettings) -> str:
        return hashlib.sha256(model_id + audio_id + settings.key()).hexdigest()

    def get(self, key: str) -> Voice | None:
        voice = self._items.get(key)
        if (
            voice is None
            and self.directory is not None
            and (self.directory / f"{key}.pth").is_file()
        ):
            try:
                voice = Voice.load(self.directory / f"{key}.pth")
            except CheckpointError as exc:  # a corrupt cache file is a miss, not a failure
                logger.warning("ignoring unreadable voice cache entry: %s", exc)
        if voice is None:
            self.misses += 1
            return None
        self.hits += 1
        self._remember(key, voice)
        return voice

    def put(self, key: str, voice: Voice) -> None:
        self._remember(key, voice)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{key}.tmp"
            voice.save(tmp)
            tmp.replace(self.directory / f"{key}.pth")  # atomic: readers never see half a file

    def _remember(self, key: str, voice: Voice) -> None:
        self._items[key] = voice
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
