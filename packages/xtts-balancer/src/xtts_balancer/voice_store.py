"""The files of the voices added through the API, in ``model.voices_dir``.

An added voice is ``<voice_id>.wav`` (mono 22.05 kHz, the clip the workers clone) and
``<voice_id>.voice.json`` (its :class:`~xtts_core.cluster_voices.VoiceMeta`). Its id is
:func:`content_id`: a hash of the uploaded reference files and the settings that turn them into
the clip, so the same upload has the same id on every balancer of a fleet. In broker mode a
deleted voice leaves ``<voice_id>.deleted.json`` (a tombstone with the time of the delete), which
:func:`manifest` reports so that the brokers never copy the voice back from a balancer that
missed the delete (:mod:`xtts_core.cluster_voices`).

The invariants a changer must keep: files appear by atomic renames, the clip last, so a worker
that scans the library never reads half a file and a voice with a clip always has its sidecar;
and every change to the library happens under the balancer's ``library_lock``
(:class:`~xtts_balancer.state.BalancerState`), with the check that decides it, so a copy from the fleet and a delete cannot interleave and bring a deleted voice back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import soundfile
from pydantic import ValidationError

from xtts_core.cluster_voices import VoiceManifest, VoiceMeta, VoiceRecord

__all__ = [
    "ADDED_VOICE_SUFFIX",
    "GAP_SECONDS",
    "LIBRARY_RATE",
    "TOMBSTONE_SUFFIX",
    "content_id",
    "deleted_at",
    "manifest",
    "read_meta",
    "remove",
    "sidecar_path",
    "store",
    "store_wav",
    "tombstone",
]

logger = logging.getLogger(__name__)

#: Sample rate of the stored library clip (XTTS conditions on 22.05 kHz audio).
LIBRARY_RATE = 22050
#: Pause between joined reference files.
GAP_SECONDS = 0.25
#: Sidecar suffix of voices added through the API (name, description, labels).
ADDED_VOICE_SUFFIX = ".voice.json"
#: Suffix of the tombstone a deleted voice leaves in broker mode.
TOMBSTONE_SUFFIX = ".deleted.json"
#: Bump when the way uploads become a clip changes: the same files then make another voice.
_CLONE_VERSION = f"xtts-voice-v1 rate={LIBRARY_RATE} gap={GAP_SECONDS}"
_VOICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def content_id(contents: list[bytes]) -> str:
    """The voice id of an upload: 20 hex digits of a SHA-256 over the clone settings and each
    file's length and bytes, in upload order (the shape of the random ids it replaces)."""
    digest = hashlib.sha256(_CLONE_VERSION.encode("ascii"))
    for data in contents:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:20]


def sidecar_path(library: Path, voice_id: str) -> Path | None:
    """The sidecar path of ``voice_id`` inside ``library``; ``None`` for an id that is no name."""
    if not _VOICE_ID.fullmatch(voice_id):
        return None
    return library / f"{voice_id}{ADDED_VOICE_SUFFIX}"


def read_meta(library: Path, voice_id: str) -> VoiceMeta | None:
    """The sidecar of an added voice, ``None`` if ``voice_id`` was not added through the API."""
    sidecar = sidecar_path(library, voice_id)
    if sidecar is None or not sidecar.is_file():
        return None
    return VoiceMeta.model_validate_json(sidecar.read_text(encoding="utf-8"))


def store(library: Path, voice_id: str, clip: np.ndarray, meta: VoiceMeta) -> None:
    """Store a joined clip (float samples at :data:`LIBRARY_RATE`) as an added voice."""
    partial = library / f".{voice_id}.partial"
    soundfile.write(partial, np.clip(clip, -1.0, 1.0), LIBRARY_RATE, format="WAV", subtype="PCM_16")
    _publish(library, voice_id, partial, meta)


def store_wav(library: Path, voice_id: str, wav: bytes, meta: VoiceMeta) -> None:
    """Store a copy of another balancer's clip (already a WAV at :data:`LIBRARY_RATE`).

    Raises:
        ValueError: ``wav`` is not a mono WAV at :data:`LIBRARY_RATE`.
    """
    partial = library / f".{voice_id}.partial"
    partial.write_bytes(wav)
    try:
        info = soundfile.info(partial)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        partial.unlink(missing_ok=True)
        raise ValueError(f"the clip is not a WAV file ({exc})") from None
    if info.format != "WAV" or info.samplerate != LIBRARY_RATE or info.channels != 1:
        partial.unlink(missing_ok=True)
        raise ValueError(f"the clip must be a mono WAV at {LIBRARY_RATE} Hz")
    _publish(library, voice_id, partial, meta)


def _publish(library: Path, voice_id: str, partial: Path, meta: VoiceMeta) -> None:
    """Sidecar first, then the clip by an atomic rename; an older tombstone goes."""
    sidecar = sidecar_path(library, voice_id)
    if sidecar is None:
        partial.unlink(missing_ok=True)
        raise ValueError(f"{voice_id!r} is not a voice id")
    written = library / f".{voice_id}.meta.partial"
    written.write_text(meta.model_dump_json(), encoding="utf-8")
    written.replace(sidecar)  # atomic too: adding a voice again rewrites a sidecar in use
    partial.replace(library / f"{voice_id}.wav")
    (library / f"{voice_id}{TOMBSTONE_SUFFIX}").unlink(missing_ok=True)


def remove(library: Path, voice_id: str) -> None:
    """Remove an added voice's clip and sidecar (clip first: no clip without a sidecar)."""
    (library / f"{voice_id}.wav").unlink(missing_ok=True)
    sidecar = sidecar_path(library, voice_id)
    if sidecar is not None:
        sidecar.unlink(missing_ok=True)


def tombstone(library: Path, voice_id: str, at: float) -> None:
    """Record that ``voice_id`` was deleted at ``at`` (Unix time)."""
    (library / f"{voice_id}{TOMBSTONE_SUFFIX}").write_text(json.dumps({"at": at}), "utf-8")


def deleted_at(library: Path, voice_id: str) -> float | None:
    """When ``voice_id`` was deleted, if a tombstone says so."""
    path = library / f"{voice_id}{TOMBSTONE_SUFFIX}"
    if not _VOICE_ID.fullmatch(voice_id) or not path.is_file():
        return None
    return _tombstone_time(path)


def _tombstone_time(path: Path) -> float | None:
    try:
        at = json.loads(path.read_text(encoding="utf-8"))["at"]
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable tombstone %s", path.name)
        return None
    return float(at) if isinstance(at, int | float) and at >= 0 else None


def manifest(library: Path | None) -> VoiceManifest:
    """Every added voice of ``library`` (present since its ``changed_at``) and every tombstone."""
    if library is None:
        return VoiceManifest()
    records: list[VoiceRecord] = []
    for path in sorted(library.iterdir()):
        name = path.name
        if name.endswith(ADDED_VOICE_SUFFIX):
            voice_id = name.removesuffix(ADDED_VOICE_SUFFIX)
            try:
                meta = read_meta(library, voice_id)
            except (OSError, ValidationError):
                logger.warning("ignoring unreadable sidecar %s", name)
                continue
            if meta is not None and (library / f"{voice_id}.wav").is_file():
                at = meta.changed_at or float(meta.created_unix)
                records.append(VoiceRecord(voice_id=voice_id, state="present", at=at))
        elif name.endswith(TOMBSTONE_SUFFIX):
            voice_id = name.removesuffix(TOMBSTONE_SUFFIX)
            at_deleted = _tombstone_time(path)
            if at_deleted is not None and _VOICE_ID.fullmatch(voice_id):
                records.append(VoiceRecord(voice_id=voice_id, state="deleted", at=at_deleted))
    return VoiceManifest(voices=records)
