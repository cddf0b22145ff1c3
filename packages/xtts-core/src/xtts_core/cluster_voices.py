"""The fleet's voice library contract between brokers and balancers (no torch).

A voice added through the API has a content-addressed id (the balancer hashes the uploaded
reference files and its clone settings), so the same upload gets the same id on every balancer
and adding it again changes nothing but its name. Brokers keep the balancers' libraries equal
by last-writer-wins over :class:`VoiceRecord`\\ s: each balancer reports, for every voice it
holds or deleted, whether it is ``present`` or ``deleted`` and when that last changed; the newest
record of an id wins everywhere (a tie goes to ``deleted``, so a delete is never undone by a
copy that raced it). A deleted voice stays as a tombstone, which is what keeps a balancer that
was away while the voice was deleted from handing it back.

The balancer's cluster endpoints, all signed with the cluster secret
(:func:`xtts_core.cluster.sign_request`, the body included) and served in broker mode only:

- ``GET`` :data:`CLUSTER_VOICES_PATH`: the :class:`VoiceManifest`.
- ``GET`` :data:`CLUSTER_VOICES_PATH`\\ ``/{voice_id}``: the stored clip (a WAV body), with the
  voice's :class:`VoiceMeta` base64url-encoded JSON in :data:`VOICE_META_HEADER`.
- ``PUT`` the same path, same body and header: store that copy unless a newer record holds.
- ``DELETE`` the same path with a :class:`VoiceDeletion` body: leave a tombstone of that time.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CLUSTER_VOICES_PATH",
    "VOICE_META_HEADER",
    "VoiceDeletion",
    "VoiceManifest",
    "VoiceMeta",
    "VoiceRecord",
    "decode_meta",
    "encode_meta",
    "newest",
]

CLUSTER_VOICES_PATH: Final = "/cluster/voices"
VOICE_META_HEADER: Final = "x-xtts-voice-meta"
_VOICE_ID = r"^[A-Za-z0-9_-]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class VoiceRecord(_Model):
    """The state of one voice id in one balancer's library."""

    voice_id: str = Field(pattern=_VOICE_ID)
    state: Literal["present", "deleted"]
    at: float = Field(ge=0)
    """Unix time of the last add or delete of this id."""


class VoiceManifest(_Model):
    """Every added voice a balancer holds, and every tombstone it keeps."""

    voices: list[VoiceRecord] = Field(default_factory=list)


class VoiceMeta(_Model):
    """What travels with a copied clip: the sidecar of an added voice."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    created_unix: int = 0
    changed_at: float = Field(default=0.0, ge=0)
    """Unix time of the add this copy comes from (the record's ``at``)."""


class VoiceDeletion(_Model):
    """Body of a cluster ``DELETE``: when the voice was deleted (the winning record's ``at``)."""

    at: float = Field(ge=0)


def newest(records: list[VoiceRecord]) -> dict[str, VoiceRecord]:
    """The winning record of each id: the latest ``at``; ``deleted`` wins a tie."""
    winners: dict[str, VoiceRecord] = {}
    for record in records:
        held = winners.get(record.voice_id)
        if held is None or (record.at, record.state == "deleted") > (
            held.at,
            held.state == "deleted",
        ):
            winners[record.voice_id] = record
    return winners


def encode_meta(meta: VoiceMeta) -> str:
    """``meta`` as the value of :data:`VOICE_META_HEADER`."""
    return base64.urlsafe_b64encode(meta.model_dump_json().encode("utf-8")).decode("ascii")


def decode_meta(value: str | None) -> VoiceMeta:
    """The :class:`VoiceMeta` of a header value.

    Raises:
        ValueError: the header is missing or does not hold a valid :class:`VoiceMeta`.
    """
    if not value:
        raise ValueError(f"the {VOICE_META_HEADER} header is required")
    try:
        return VoiceMeta.model_validate_json(base64.urlsafe_b64decode(value.encode("ascii")))
    except (binascii.Error, UnicodeError, ValidationError) as exc:
        raise ValueError(f"{VOICE_META_HEADER} is not base64url JSON of a voice: {exc}") from None
