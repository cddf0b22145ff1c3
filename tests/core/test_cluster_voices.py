"""The fleet voice library's contract: last writer wins, a delete wins a tie, the meta header."""

from __future__ import annotations

import pytest

from xtts_core.cluster_voices import VoiceMeta, VoiceRecord, decode_meta, encode_meta, newest


def record(voice_id: str, state: str, at: float) -> VoiceRecord:
    return VoiceRecord.model_validate({"voice_id": voice_id, "state": state, "at": at})


def test_the_latest_record_of_each_id_wins() -> None:
    records = [
        record("a", "present", 10), record("a", "deleted", 20), record("a", "present", 15),
        record("b", "deleted", 5), record("b", "present", 7),
    ]  # fmt: skip
    assert newest(records) == {"a": record("a", "deleted", 20), "b": record("b", "present", 7)}


@pytest.mark.parametrize("order", [1, -1])
def test_a_delete_wins_a_tie_whatever_the_order(order: int) -> None:
    records = [record("a", "present", 10), record("a", "deleted", 10)][::order]
    assert newest(records)["a"].state == "deleted"


def test_meta_round_trips_through_its_header() -> None:
    meta = VoiceMeta(name="Ünï ✓", labels={"accent": "none"}, created_unix=3, changed_at=3.5)
    assert decode_meta(encode_meta(meta)) == meta


@pytest.mark.parametrize("value", [None, "", "!!!", "eyJuYW1lIjogIiJ9"])  # the last: name ""
def test_a_missing_or_bad_meta_header_is_a_clear_error(value: str | None) -> None:
    with pytest.raises(ValueError, match="x-xtts-voice-meta"):
        decode_meta(value)
