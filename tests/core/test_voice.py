"""Voices: cloning from real audio files, the Voice value, and the voice cache (memory + disk)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

from xtts_core.checkpoint import read_speakers  # noqa: E402
from xtts_core.engine import XttsEngine  # noqa: E402
from xtts_core.errors import AudioError, CheckpointError  # noqa: E402
from xtts_core.voice import (  # noqa: E402
    CloneSettings,
    Voice,
    VoiceCache,
    audio_fingerprint,
    clone_voice,
    clone_voice_from_files,
    model_fingerprint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATE = 44100


def tone(seconds: float, freq: float = 220.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A sine with a little noise, float32 mono."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * noise).astype(np.float32)


def write_stereo(path: Path, seconds: float, freq: float = 220.0, seed: int = 0) -> Path:
    left = tone(seconds, freq, seed=seed)
    sf.write(path, np.stack([left, 0.8 * left[::-1]], axis=1), RATE)
    return path


def write_mono(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples, RATE)
    return path


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refs")
    (d / "notes.wav").write_text("not audio", encoding="utf-8")
    return {
        "main": write_stereo(d / "speaker.wav", 3.0),
        "other": write_stereo(d / "other.flac", 1.5, freq=330.0, seed=1),
        "brief": write_mono(d / "brief.ogg", tone(0.6, freq=180.0, seed=2)),
        "silent": write_mono(d / "silent.wav", np.zeros(RATE, np.float32)),
        "short": write_mono(d / "short.wav", tone(0.2)),  # under the 0.33 s chunk minimum
        "tiny": write_mono(d / "tiny.wav", tone(0.01)),  # 10 ms: under the speaker encoder's pad
        "text": d / "notes.wav",
    }


@pytest.fixture
def fresh(engine: XttsEngine) -> XttsEngine:
    """The session model behind an empty in-memory voice cache (cloning results stay local)."""
    return XttsEngine(engine.checkpoint, VoiceCache())


@pytest.fixture(scope="module")
def cloned(engine: XttsEngine, refs: dict[str, Path]) -> Voice:
    return clone_voice_from_files(engine.model, [refs["main"]], engine.clone_settings, "main")


# --- cloning ---------------------------------------------------------------------------------


def test_clone_from_a_stereo_44k_wav(engine: XttsEngine, cloned: Voice) -> None:
    width = engine.config.gpt.width
    assert cloned.gpt_cond_latent.shape == (1, 32, width)
    assert cloned.speaker_embedding.shape == (1, 512, 1)
    assert cloned.gpt_cond_latent.dtype == cloned.speaker_embedding.dtype == torch.float32
    assert cloned.gpt_cond_latent.device.type == "cpu"
    assert torch.isfinite(cloned.gpt_cond_latent).all()
    assert float(cloned.speaker_embedding.norm()) == pytest.approx(1.0, abs=1e-5)
    assert cloned.name == "main"


def test_engine_clone_goes_through_the_cache(
    fresh: XttsEngine, refs: dict[str, Path], cloned: Voice
) -> None:
    first = fresh.clone_voice([refs["main"]])
    assert (fresh.voice_cache.hits, fresh.voice_cache.misses) == (0, 1)
    second = fresh.clone_voice([refs["main"]])
    assert (fresh.voice_cache.hits, fresh.voice_cache.misses) == (1, 1)
    assert second is first
    torch.testing.assert_close(first.gpt_cond_latent, cloned.gpt_cond_latent, rtol=0, atol=0)
    torch.testing.assert_close(first.speaker_embedding, cloned.speaker_embedding, rtol=0, atol=0)


def test_several_files_average_the_embeddings(
    engine: XttsEngine, refs: dict[str, Path], cloned: Voice
) -> None:
    settings = engine.clone_settings
    other = clone_voice_from_files(engine.model, [refs["other"]], settings)
    both = clone_voice_from_files(engine.model, [refs["main"], refs["other"]], settings)
    mean = (cloned.speaker_embedding + other.speaker_embedding) / 2
    torch.testing.assert_close(both.speaker_embedding, mean, rtol=1e-5, atol=1e-6)
    # latents come from the concatenated audio: not the first file's
    assert not torch.allclose(both.gpt_cond_latent, cloned.gpt_cond_latent)
    assert both.gpt_cond_latent.shape == cloned.gpt_cond_latent.shape


def test_max_ref_len_cuts_each_clip(engine: XttsEngine) -> None:
    clip = torch.from_numpy(tone(2.0, rate=22050))[None]
    settings = CloneSettings(gpt_cond_len=30, gpt_cond_chunk_len=4, max_ref_len=1.0)
    cut = clone_voice(engine.model, [clip], settings)
    first_second = clone_voice(engine.model, [clip[:, :22050]], settings)
    torch.testing.assert_close(cut.gpt_cond_latent, first_second.gpt_cond_latent, rtol=0, atol=0)
    torch.testing.assert_close(
        cut.speaker_embedding, first_second.speaker_embedding, rtol=0, atol=0
    )


def test_sound_norm_refs_removes_the_level(engine: XttsEngine) -> None:
    clip = torch.from_numpy(tone(1.0, rate=22050))[None]
    settings = CloneSettings(
        gpt_cond_len=1, gpt_cond_chunk_len=1, max_ref_len=1, sound_norm_refs=True
    )
    loud = clone_voice(engine.model, [clip], settings)
    quiet = clone_voice(engine.model, [clip * 0.1], settings)
    torch.testing.assert_close(loud.gpt_cond_latent, quiet.gpt_cond_latent, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        loud.speaker_embedding, quiet.speaker_embedding, rtol=1e-4, atol=1e-5
    )


def test_silent_audio_is_an_audio_error(fresh: XttsEngine, refs: dict[str, Path]) -> None:
    with pytest.raises(AudioError, match="silent"):
        fresh.clone_voice([refs["silent"]])
    with pytest.raises(AudioError, match="reference clip 1 is silent"):
        clone_voice_from_files(fresh.model, [refs["main"], refs["silent"]], fresh.clone_settings)


@pytest.mark.parametrize("which", ["short", "tiny"])
def test_too_short_audio_is_an_audio_error(
    fresh: XttsEngine, refs: dict[str, Path], which: str
) -> None:
    with pytest.raises(AudioError, match="too short"):
        fresh.clone_voice([refs[which]])


def test_missing_file_is_named(fresh: XttsEngine, tmp_path: Path, refs: dict[str, Path]) -> None:
    missing = tmp_path / "nobody.wav"
    with pytest.raises(AudioError) as info:
        fresh.clone_voice([refs["main"], missing])
    assert str(missing) in str(info.value)
    with pytest.raises(AudioError, match="not found") as info:
        clone_voice_from_files(fresh.model, [missing], fresh.clone_settings)
    assert str(missing) in str(info.value)


def test_unreadable_audio_is_named(fresh: XttsEngine, refs: dict[str, Path]) -> None:
    with pytest.raises(AudioError) as info:
        fresh.clone_voice([refs["text"]])
    assert str(refs["text"]) in str(info.value)


def test_no_audio_and_bad_shapes(engine: XttsEngine) -> None:
    with pytest.raises(AudioError, match="no reference audio"):
        clone_voice(engine.model, [], engine.clone_settings)
    with pytest.raises(AudioError, match=r"must have shape \(1, T\)"):
        clone_voice(engine.model, [torch.ones(2, 22050) * 0.1], engine.clone_settings)
    with pytest.raises(AudioError, match="gpt_cond_chunk_len must be > 0"):
        clone_voice(engine.model, [torch.ones(1, 22050) * 0.1], CloneSettings(gpt_cond_chunk_len=0))


# --- the Voice value -------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, cloned: Voice) -> None:
    path = tmp_path / "voice.pth"
    cloned.save(path)
    loaded = Voice.load(path)
    assert loaded.name == "main"
    torch.testing.assert_close(loaded.gpt_cond_latent, cloned.gpt_cond_latent, rtol=0, atol=0)
    torch.testing.assert_close(loaded.speaker_embedding, cloned.speaker_embedding, rtol=0, atol=0)
    # the file is a one-voice speakers_xtts.pth: the checkpoint reader accepts it
    assert list(read_speakers(path)) == ["main"]
    assert Voice.load(path, "main").name == "main"


def test_load_a_speakers_xtts_entry(tiny_dir: Path, engine: XttsEngine) -> None:
    voice = Voice.load(tiny_dir / "speakers_xtts.pth", "Other Speaker")
    named = engine.speaker("Other Speaker")
    assert voice.name == named.name == "Other Speaker"
    torch.testing.assert_close(voice.gpt_cond_latent, named.gpt_cond_latent, rtol=0, atol=0)
    torch.testing.assert_close(voice.speaker_embedding, named.speaker_embedding, rtol=0, atol=0)
    assert Voice.load(tiny_dir / "speakers_xtts.pth").name == "Random Speaker"  # the first


def test_from_entry_normalises_stored_shapes() -> None:
    voice = Voice.from_entry(
        "x",
        {
            "gpt_cond_latent": torch.ones(32, 64, dtype=torch.float16),
            "speaker_embedding": torch.ones(512),
        },
    )
    assert voice.gpt_cond_latent.shape == (1, 32, 64)
    assert voice.gpt_cond_latent.dtype == torch.float32
    assert voice.speaker_embedding.shape == (1, 512, 1)


def test_voice_file_errors(tmp_path: Path, cloned: Voice) -> None:
    with pytest.raises(CheckpointError, match="voice file not found") as info:
        Voice.load(tmp_path / "none.pth")
    assert str(tmp_path / "none.pth") in str(info.value)
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(CheckpointError, match="cannot read voice file"):
        Voice.load(tmp_path / "junk.pth")
    torch.save({}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="holds no voices"):
        Voice.load(tmp_path / "empty.pth")
    cloned.save(tmp_path / "v.pth")
    with pytest.raises(CheckpointError, match=r"voice 'other' not in .*; it has: main"):
        Voice.load(tmp_path / "v.pth", "other")


# --- the voice cache -------------------------------------------------------------------------


def small_voice(value: float, name: str = "v") -> Voice:
    return Voice(torch.full((1, 32, 4), value), torch.full((1, 512, 1), value), name)


def test_lru_eviction_and_counts() -> None:
    cache = VoiceCache(capacity=2)
    a, b, c = small_voice(1, "a"), small_voice(2, "b"), small_voice(3, "c")
    assert cache.get("a") is None
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a becomes the most recent
    cache.put("c", c)  # evicts b, the least recently used
    assert cache.get("b") is None
    assert cache.get("a") is a
    assert cache.get("c") is c
    assert (cache.hits, cache.misses) == (3, 2)


def test_put_of_an_existing_key_refreshes_it() -> None:
    cache = VoiceCache(capacity=2)
    cache.put("a", small_voice(1))
    cache.put("b", small_voice(2))
    newer = small_voice(9)
    cache.put("a", newer)
    cache.put("c", small_voice(3))  # evicts b
    assert cache.get("a") is newer
    assert cache.get("b") is None


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        VoiceCache(capacity=0)


def test_disk_cache_is_shared_across_engines(
    tmp_path: Path, tiny_dir: Path, engine: XttsEngine, refs: dict[str, Path]
) -> None:
    cache_dir = tmp_path / "voices"
    first = XttsEngine(engine.checkpoint, VoiceCache(directory=cache_dir))
    voice = first.clone_voice([refs["brief"]])
    files = list(cache_dir.glob("*.pth"))
    assert len(files) == 1
    assert not list(cache_dir.glob(".*.tmp")), "the temporary file is renamed into place"

    # A second engine, loaded from disk, finds it there. To prove it reads rather than
    # recomputes, the entry is replaced by a voice no cloning could produce.
    marker = small_voice(0.25, "from-disk")
    marker = dataclasses.replace(
        marker, gpt_cond_latent=torch.full_like(voice.gpt_cond_latent, 0.25)
    )
    marker.save(files[0])
    second = XttsEngine.from_pretrained(tiny_dir, device="cpu", voice_cache_dir=cache_dir)
    got = second.clone_voice([refs["brief"]])
    assert (second.voice_cache.hits, second.voice_cache.misses) == (1, 0)
    assert got.name == "from-disk"
    torch.testing.assert_close(got.gpt_cond_latent, marker.gpt_cond_latent, rtol=0, atol=0)


def test_disk_cache_round_trip_equals_the_clone(
    tmp_path: Path, engine: XttsEngine, refs: dict[str, Path]
) -> None:
    first = XttsEngine(engine.checkpoint, VoiceCache(directory=tmp_path))
    voice = first.clone_voice([refs["brief"]], name="me")
    second = XttsEngine(engine.checkpoint, VoiceCache(directory=tmp_path))
    got = second.clone_voice([refs["brief"]], name="me")
    assert second.voice_cache.hits == 1
    assert got.name == "me"
    torch.testing.assert_close(got.gpt_cond_latent, voice.gpt_cond_latent, rtol=0, atol=0)
    torch.testing.assert_close(got.speaker_embedding, voice.speaker_embedding, rtol=0, atol=0)


def test_corrupt_disk_entry_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / "k.pth").write_text("garbage")
    cache = VoiceCache(directory=tmp_path)
    assert cache.get("k") is None
    assert (cache.hits, cache.misses) == (0, 1)
    cache.put("k", small_voice(1))
    assert VoiceCache(directory=tmp_path).get("k") is not None


def test_cache_key_depends_on_content_settings_and_model(
    tmp_path: Path, engine: XttsEngine, refs: dict[str, Path]
) -> None:
    model_id = model_fingerprint(engine.model)
    settings = engine.clone_settings
    audio = audio_fingerprint([refs["main"]])
    key = VoiceCache.key(model_id, audio, settings)
    assert key == VoiceCache.key(
        model_fingerprint(engine.model), audio_fingerprint([refs["main"]]), settings
    )

    # the file name does not matter, the content does
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(refs["main"].read_bytes())
    assert VoiceCache.key(model_id, audio_fingerprint([copy]), settings) == key
    edited = bytearray(copy.read_bytes())
    edited[-1] ^= 1
    copy.write_bytes(bytes(edited))
    assert VoiceCache.key(model_id, audio_fingerprint([copy]), settings) != key

    # order and number of files matter
    both = audio_fingerprint([refs["main"], refs["other"]])
    assert both != audio_fingerprint([refs["other"], refs["main"]])
    assert VoiceCache.key(model_id, both, settings) != key

    for change in (
        {"gpt_cond_len": 6.0},
        {"gpt_cond_chunk_len": 2.0},
        {"max_ref_len": 10.0},
        {"sound_norm_refs": True},
    ):
        other = dataclasses.replace(settings, **change)
        assert VoiceCache.key(model_id, audio, other) != key, change

    assert VoiceCache.key(b"another model", audio, settings) != key


def test_changed_settings_miss_the_cache(fresh: XttsEngine, refs: dict[str, Path]) -> None:
    settings = CloneSettings(gpt_cond_len=0.5, gpt_cond_chunk_len=0.5, max_ref_len=0.5)
    fresh.clone_voice([refs["brief"]], settings)
    fresh.clone_voice([refs["brief"]], dataclasses.replace(settings, max_ref_len=0.4))
    assert (fresh.voice_cache.hits, fresh.voice_cache.misses) == (0, 2)
    fresh.clone_voice([refs["brief"]], settings)
    assert fresh.voice_cache.hits == 1
