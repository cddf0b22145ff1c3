"""The files of added voices (xtts_balancer.voice_store): content ids, copies, tombstones."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from xtts_balancer.voice_store import (
    LIBRARY_RATE,
    content_id,
    deleted_at,
    manifest,
    read_meta,
    remove,
    store,
    store_wav,
    tombstone,
)
from xtts_core.cluster_voices import VoiceMeta


def test_the_id_is_the_content_and_its_order() -> None:
    one, two = b"first file", b"second file"
    assert content_id([one, two]) == content_id([one, two])
    assert len(content_id([one])) == 20 and int(content_id([one]), 16) >= 0
    assert content_id([two, one]) != content_id([one, two])
    assert content_id([one + two]) != content_id([one, two])  # file boundaries count


def test_store_then_manifest_then_tombstone(tmp_path: Path) -> None:
    meta = VoiceMeta(name="One", created_unix=100, changed_at=100.5)
    store(tmp_path, "v1", np.zeros(LIBRARY_RATE, np.float32), meta)
    assert read_meta(tmp_path, "v1") == meta
    [present] = manifest(tmp_path).voices
    assert (present.voice_id, present.state, present.at) == ("v1", "present", 100.5)
    remove(tmp_path, "v1")
    tombstone(tmp_path, "v1", 200.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.deleted.json"]
    [gone] = manifest(tmp_path).voices
    assert (gone.state, gone.at) == ("deleted", 200.0) and deleted_at(tmp_path, "v1") == 200.0
    store(tmp_path, "v1", np.zeros(LIBRARY_RATE, np.float32), meta)  # added again: no tombstone
    assert deleted_at(tmp_path, "v1") is None and manifest(tmp_path).voices[0].state == "present"


def wav(rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros((rate // 2, channels), np.float32), rate, format="WAV")
    return out.getvalue()


def test_a_copy_must_be_a_library_clip(tmp_path: Path) -> None:
    meta = VoiceMeta(name="Copy")
    store_wav(tmp_path, "v2", wav(LIBRARY_RATE), meta)
    assert (tmp_path / "v2.wav").is_file() and read_meta(tmp_path, "v2") == meta
    for bad in (b"not audio", wav(16000), wav(LIBRARY_RATE, channels=2)):
        with pytest.raises(ValueError, match="WAV"):
            store_wav(tmp_path, "v3", bad, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2.voice.json", "v2.wav"]


def test_an_unreadable_sidecar_or_tombstone_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "x.voice.json").write_text("{")
    (tmp_path / "x.wav").write_bytes(wav(LIBRARY_RATE))
    (tmp_path / "y.deleted.json").write_text("[]")
    (tmp_path / "clip.wav").write_bytes(wav(LIBRARY_RATE))  # a server clip: not in the manifest
    assert manifest(tmp_path).voices == []
