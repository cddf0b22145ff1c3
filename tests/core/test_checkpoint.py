"""Checkpoint loading: every file variant written by write_random_checkpoint, and bad files."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from xtts_core.checkpoint import (  # noqa: E402
    CheckpointFiles,
    PickledConfigPlaceholder,
    extract_state_dict,
    read_model_file,
)
from xtts_core.engine import XttsEngine  # noqa: E402
from xtts_core.errors import (  # noqa: E402
    CheckpointError,
    DeviceError,
    UnsafeCheckpointError,
    XttsError,
)
from xtts_core.kv_cache import KVCache  # noqa: E402
from xtts_core.loader import LoadedCheckpoint, load_checkpoint  # noqa: E402
from xtts_core.random_checkpoint import write_random_checkpoint  # noqa: E402
from xtts_core.steps import prefill, prompt_embeddings  # noqa: E402
from xtts_core.text.vocab import write_vocab  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHECKPOINT_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")


# --- helpers ---------------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """(size, mtime_ns, sha256) of every file, to prove loading writes nothing."""
    out = {}
    for path in sorted(directory.iterdir()):
        st = path.stat()
        out[path.name] = (st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def linked_dir(
    tmp_path: Path, source: Path, skip: tuple[str, ...] = (), **replace: Callable[[Path], None]
) -> Path:
    """A checkpoint directory of symlinks to ``source``'s files, minus ``skip``; each
    ``replace[name]`` (dots as underscores) writes its own version of that file instead."""
    out = tmp_path / "ckpt"
    out.mkdir()
    for name in CHECKPOINT_FILES:
        if name in skip:
            continue
        writer = replace.get(name.replace(".", "_"))
        if writer is not None:
            writer(out / name)
        else:
            (out / name).symlink_to(source / name)
    return out


def edited_config(source: Path, **model_args: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        raw = json.loads((source / "config.json").read_text(encoding="utf-8"))
        raw["model_args"].update(model_args)
        path.write_text(json.dumps(raw), encoding="utf-8")

    return write


def gpt_outputs(
    loaded: LoadedCheckpoint, voice: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill (latents, logits) of a fixed prompt: exercises every GPT weight."""
    gpt, cfg = loaded.model.gpt, loaded.config.gpt
    ids = torch.tensor([loaded.tokenizer.encode("hello there", "en")])
    cache = KVCache(cfg.layers, 1, cfg.heads, 64, cfg.width // cfg.heads, torch.float32, "cpu")
    with torch.inference_mode():
        return prefill(gpt, prompt_embeddings(gpt, voice["gpt_cond_latent"], ids), cache)


def decoder_output(loaded: LoadedCheckpoint, voice: dict[str, torch.Tensor]) -> torch.Tensor:
    """HiFi-GAN waveform of three fixed latents (exercises every folded weight-norm conv)."""
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 3, loaded.config.decoder.decoder_input_dim, generator=gen)
    g = voice["speaker_embedding"]
    with torch.inference_mode():
        return loaded.model.hifigan_decoder(latents, g)


# --- variants ----------------------------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "legacy-weight-norm": {"weight_norm": "legacy"},
    "pickled-config": {"pickled_config": True},
    "trainer-prefix": {"trainer_prefix": True},
    "all-legacy": {
        "weight_norm": "legacy",
        "pickled_config": True,
        "trainer_prefix": True,
        "training_files": True,
    },
}


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_variant_loads_to_the_same_model(
    tmp_path: Path, engine: XttsEngine, options: dict[str, Any]
) -> None:
    directory = write_random_checkpoint(tmp_path / "variant", "tiny", seed=0, **options)
    before = snapshot(directory)

    loaded = load_checkpoint(directory, device="cpu")

    assert snapshot(directory) == before, "loading must not write the user's files"
    assert "TTS" not in sys.modules, "no coqui module may be imported or faked after loading"
    plain = engine.checkpoint
    assert loaded.config == plain.config
    ours, theirs = loaded.model.state_dict(), plain.model.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0, msg=key)
    # the same function, not only the same numbers: run both on the plain checkpoint's voice
    # (the trainer variant draws its dvae weights first, so its random speakers differ)
    voice = plain.speakers["Random Speaker"]
    for a, b in zip(gpt_outputs(loaded, voice), gpt_outputs(plain, voice), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if options.get("weight_norm") == "legacy":  # the vocoder is where the namings differ
        torch.testing.assert_close(
            decoder_output(loaded, voice), decoder_output(plain, voice), rtol=0, atol=0
        )
    assert loaded.speakers.keys() == plain.speakers.keys()
    check_on_disk_layout(directory, options)


def check_on_disk_layout(directory: Path, options: dict[str, Any]) -> None:
    """Guards the test above: the variant files use the legacy forms they claim to."""
    raw = read_model_file(directory / "model.pth")
    keys = list(raw["model"])
    legacy = options.get("weight_norm") == "legacy"
    assert any(k.endswith(".weight_g") for k in keys) == legacy
    assert any(".parametrizations.weight.original0" in k for k in keys) != legacy
    prefixed = options.get("trainer_prefix", False)
    assert all(k.startswith("xtts.") for k in keys) == prefixed
    assert any(k.startswith("xtts.dvae.") for k in keys) == prefixed
    config = raw["config"]
    if options.get("pickled_config"):
        assert isinstance(config, PickledConfigPlaceholder)
        assert type(config).__name__ == "XttsConfig"
        assert isinstance(config.model_args, PickledConfigPlaceholder)
        assert config.model_args.gpt_layers == 2
    else:
        assert isinstance(config, dict)
    training = options.get("training_files", False)
    assert (directory / "dvae.pth").exists() == (directory / "mel_stats.pth").exists() == training


def test_training_files_are_ignored(tmp_path: Path, tiny_dir: Path, engine: XttsEngine) -> None:
    directory = linked_dir(tmp_path, tiny_dir)
    torch.save({"encoder.weight": torch.randn(8, 8)}, directory / "dvae.pth")
    (directory / "mel_stats.pth").write_text("not even a torch file")
    loaded = load_checkpoint(directory, device="cpu")
    assert loaded.config == engine.config
    assert (directory / "mel_stats.pth").read_text() == "not even a torch file"


def test_plain_load_does_not_touch_files(tmp_path: Path, tiny_dir: Path) -> None:
    before = snapshot(tiny_dir)
    load_checkpoint(CheckpointFiles.from_dir(tiny_dir), device="cpu")
    assert snapshot(tiny_dir) == before


def test_explicit_paths_in_other_directories(tmp_path: Path, tiny_dir: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "cfg.json").symlink_to(tiny_dir / "config.json")
    (tmp_path / "b" / "weights.pth").symlink_to(tiny_dir / "model.pth")
    files = CheckpointFiles(
        tmp_path / "a" / "cfg.json", tmp_path / "b" / "weights.pth", tiny_dir / "vocab.json"
    )
    loaded = load_checkpoint(files, device="cpu")
    assert loaded.speakers == {}
    assert loaded.config.gpt.layers == 2


# --- unsafe pickles ----------------------------------------------------------------------------


def _run_payload(marker: str) -> None:
    Path(marker).write_text("the payload ran", encoding="utf-8")


class PayloadFunction:
    """Unpickles by calling a module-level function of this test module."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_run_payload, (self.marker,))


class PayloadSystem:
    """Unpickles by calling ``os.system`` — the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class LocalObject:
    """A harmless class that is still not on the allow-list."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (PayloadFunction, "_run_payload"),
        (PayloadSystem, "system"),
        (LocalObject, "LocalObject"),
    ],
    ids=["function", "os-system", "local-class"],
)
@pytest.mark.parametrize("where", ["config", "extra-entry"])
def test_unsafe_pickle_is_refused_and_not_run(
    tmp_path: Path, tiny_dir: Path, payload: type, refused: str, where: str
) -> None:
    marker = tmp_path / "payload-ran"
    evil = payload(marker)
    content: dict[str, Any] = {"model": {"gpt.mel_head.weight": torch.zeros(2, 2)}}
    if where == "config":
        content["config"] = evil
    else:
        content |= {"config": {}, "evil": evil}
    directory = linked_dir(tmp_path, tiny_dir, model_pth=lambda p: torch.save(content, p))

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(directory, device="cpu")

    assert not marker.exists(), "the pickled payload ran"
    message = str(info.value)
    assert str(directory / "model.pth") in message
    assert refused in message, f"the message should name the refused global: {message}"


def test_unsafe_speakers_file_is_refused(tmp_path: Path, tiny_dir: Path) -> None:
    marker = tmp_path / "payload-ran"

    def write(path: Path) -> None:
        torch.save({"Evil": PayloadFunction(marker)}, path)

    directory = linked_dir(tmp_path, tiny_dir, speakers_xtts_pth=write)
    with pytest.raises(UnsafeCheckpointError, match=r"speakers_xtts\.pth"):
        load_checkpoint(directory, device="cpu")
    assert not marker.exists()


# --- files that are not XTTS checkpoints -------------------------------------------------------


def _zip_of_text(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not a torch archive")


NOT_TORCH: dict[str, Callable[[Path], Any]] = {
    "text": lambda p: p.write_text("these are not the weights you are looking for\n"),
    "random-bytes": lambda p: p.write_bytes(bytes(range(256))[::-1] * 64),
    "seeded-random-bytes": lambda p: p.write_bytes(random.Random(3).randbytes(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "zip-of-text": _zip_of_text,
}


@pytest.mark.parametrize("writer", NOT_TORCH.values(), ids=NOT_TORCH.keys())
def test_not_a_torch_file_names_it(
    tmp_path: Path, tiny_dir: Path, writer: Callable[[Path], Any]
) -> None:
    directory = linked_dir(tmp_path, tiny_dir, model_pth=writer)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "model.pth") in str(info.value)
    # a foreign or corrupt file is not an attack: it must not be reported as unsafe code
    assert not isinstance(info.value, UnsafeCheckpointError), str(info.value)


def test_truncated_model_file_names_it(tmp_path: Path, tiny_dir: Path) -> None:
    def write(path: Path) -> None:
        with (tiny_dir / "model.pth").open("rb") as src:
            path.write_bytes(src.read(1 << 20))

    directory = linked_dir(tmp_path, tiny_dir, model_pth=write)
    with pytest.raises(CheckpointError, match=r"cannot read .* as a torch checkpoint") as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "model.pth") in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"model": {"encoder.weight": torch.ones(2)}}, "not an XTTS checkpoint: it has no 'gpt.*'"),
        ({"config": {}}, "not an XTTS checkpoint: it has no 'gpt.*'"),
        ({"model": ["gpt.weight"]}, "not an XTTS checkpoint"),
        (torch.ones(3), r"not an XTTS checkpoint \(top level is Tensor\)"),
        ([torch.ones(3)], r"not an XTTS checkpoint \(top level is list\)"),
        ({"model": {"gpt.x": "a string"}}, "entry 'gpt.x' is not a tensor"),
    ],
    ids=["no-gpt", "no-model", "model-not-mapping", "tensor", "list", "non-tensor-entry"],
)
def test_torch_file_that_is_not_xtts(
    tmp_path: Path, tiny_dir: Path, content: Any, match: str
) -> None:
    directory = linked_dir(tmp_path, tiny_dir, model_pth=lambda p: torch.save(content, p))
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "model.pth") in str(info.value)


def test_flat_state_dict_without_model_entry_is_accepted(tiny_dir: Path) -> None:
    raw = read_model_file(tiny_dir / "model.pth")["model"]
    assert (
        extract_state_dict(raw, tiny_dir / "model.pth").keys()
        == extract_state_dict({"model": raw}, tiny_dir / "model.pth").keys()
    )


def test_incomplete_weight_norm_pair_names_the_key(tmp_path: Path) -> None:
    state = {
        "gpt.mel_head.weight": torch.ones(2, 2),
        "hifigan_decoder.waveform_decoder.ups.0.weight_g": torch.ones(2, 1, 1),
    }
    with pytest.raises(CheckpointError, match=r"ups\.0\.weight_v"):
        extract_state_dict({"model": state}, tmp_path / "model.pth")


# --- config and weights that do not fit ------------------------------------------------------


@pytest.mark.parametrize(
    ("model_args", "match"),
    [
        (
            {"gpt_max_audio_tokens": 500},
            r"shape mismatch: gpt\.mel_pos_embedding\.\S+: checkpoint \(608, 64\) vs model \(503, 64\)",
        ),
        (
            {"gpt_n_model_channels": 128, "decoder_input_dim": 128},
            r"shape mismatch: gpt\.\S+: checkpoint",
        ),
        ({"gpt_layers": 3}, r"missing \d+ tensors \(e\.g\. gpt\.gpt\.h\.2\."),
        ({"gpt_layers": 1}, r"unexpected \d+ tensors \(e\.g\. gpt\.gpt\.h\.1\."),
        (
            {"gpt_num_audio_tokens": 8194},
            r"gpt\.mel_embedding\.weight: checkpoint \(1026, 64\) vs model \(8194, 64\)",
        ),
        (
            {"gpt_use_perceiver_resampler": False},
            r"unexpected \d+ tensors \(e\.g\. gpt\.conditioning_perceiver",
        ),
    ],
    ids=["audio-positions", "width", "more-layers", "fewer-layers", "audio-codes", "no-perceiver"],
)
def test_config_that_does_not_fit_names_a_tensor(
    tmp_path: Path, tiny_dir: Path, model_args: dict[str, Any], match: str
) -> None:
    directory = linked_dir(tmp_path, tiny_dir, config_json=edited_config(tiny_dir, **model_args))
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(directory, device="cpu")
    assert f"{directory / 'model.pth'} does not fit its config.json" in str(info.value)


def test_vocab_of_another_size_names_the_text_embedding(tmp_path: Path, tiny_dir: Path) -> None:
    directory = linked_dir(tmp_path, tiny_dir, vocab_json=lambda p: write_vocab(p, 400))
    with pytest.raises(
        CheckpointError,
        match=r"gpt\.text_embedding\.weight: checkpoint \(300, 64\) vs model \(400, 64\)",
    ):
        load_checkpoint(directory, device="cpu")


# --- missing and unreadable files --------------------------------------------------------------


@pytest.mark.parametrize("missing", ["config.json", "model.pth", "vocab.json"])
def test_missing_file_is_named(tmp_path: Path, tiny_dir: Path, missing: str) -> None:
    directory = linked_dir(tmp_path, tiny_dir, skip=(missing,))
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / missing) in str(info.value)


def test_missing_explicit_speakers_file_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    files = CheckpointFiles(
        tiny_dir / "config.json",
        tiny_dir / "model.pth",
        tiny_dir / "vocab.json",
        tmp_path / "spk.pth",
    )
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(files, device="cpu")
    assert str(tmp_path / "spk.pth") in str(info.value)


def test_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointError, match="model directory not found") as info:
        load_checkpoint(missing, device="cpu")
    assert str(missing) in str(info.value)


def test_a_file_instead_of_a_directory(tiny_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="model directory not found"):
        XttsEngine.from_pretrained(tiny_dir / "config.json", device="cpu")


def test_unreadable_config_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    directory = linked_dir(tmp_path, tiny_dir, config_json=lambda p: p.write_text("{oops"))
    with pytest.raises(CheckpointError, match="cannot read config file") as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "config.json") in str(info.value)


def test_unreadable_vocab_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    directory = linked_dir(tmp_path, tiny_dir, vocab_json=lambda p: p.write_text("{oops"))
    with pytest.raises(CheckpointError, match="cannot read vocab file") as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "vocab.json") in str(info.value)


# --- speakers ------------------------------------------------------------------------------


def test_speakers_file_is_optional(tmp_path: Path, tiny_dir: Path) -> None:
    directory = linked_dir(tmp_path, tiny_dir, skip=("speakers_xtts.pth",))
    engine = XttsEngine.from_pretrained(directory, device="cpu")
    assert engine.speakers == ()
    with pytest.raises(XttsError, match=r"unknown speaker 'Random Speaker'; known speakers: none"):
        engine.speaker("Random Speaker")


def test_speakers_are_read(engine: XttsEngine) -> None:
    assert engine.speakers == ("Random Speaker", "Other Speaker")
    with pytest.raises(XttsError, match="known speakers: Random Speaker, Other Speaker"):
        engine.speaker("Nobody")


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: torch.save({"Someone": torch.ones(3)}, p),
        lambda p: torch.save({"Someone": {"gpt_cond_latent": torch.ones(1, 32, 64)}}, p),
        lambda p: torch.save([torch.ones(3)], p),
        lambda p: p.write_text("not torch"),
    ],
    ids=["tensor-entry", "missing-embedding", "list", "text"],
)
def test_bad_speakers_file_is_named(
    tmp_path: Path, tiny_dir: Path, writer: Callable[[Path], Any]
) -> None:
    directory = linked_dir(tmp_path, tiny_dir, speakers_xtts_pth=writer)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory, device="cpu")
    assert str(directory / "speakers_xtts.pth") in str(info.value)


# --- devices and dtypes ----------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error when CUDA is absent")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_device_error(tiny_dir: Path, device: str) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available"):
        XttsEngine.from_pretrained(tiny_dir, device=device)


@pytest.mark.parametrize(
    ("device", "match"),
    [("banana", "unknown device 'banana'"), ("meta", "not supported; use cpu, cuda or cuda:N")],
)
def test_unusable_device_is_a_device_error(tiny_dir: Path, device: str, match: str) -> None:
    with pytest.raises(DeviceError, match=match):
        load_checkpoint(tiny_dir, device=device)


def test_fp16_on_cpu_is_a_device_error(tiny_dir: Path) -> None:
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        load_checkpoint(tiny_dir, device="cpu", dtype="fp16")
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        load_checkpoint(tiny_dir, device="cpu", dtype=torch.float16)


def test_unknown_dtype_is_a_device_error(tiny_dir: Path) -> None:
    with pytest.raises(DeviceError, match="unknown dtype 'fp8'; use one of fp32, fp16, bf16"):
        load_checkpoint(tiny_dir, device="cpu", dtype="fp8")


def test_auto_device_is_cpu_here(engine: XttsEngine) -> None:
    from xtts_core.loader import resolve_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert engine.model.device.type == "cpu"


def test_bf16_on_cpu_loads_and_speaks(tiny_dir: Path, engine: XttsEngine) -> None:
    from xtts_core.generate import SamplingParams

    bf16 = XttsEngine(load_checkpoint(tiny_dir, device="cpu", dtype="bf16"))
    gpt = bf16.model.gpt
    assert gpt.mel_head.weight.dtype == torch.bfloat16
    assert gpt.gpt.h[0].attn.c_attn.weight.dtype == torch.bfloat16
    # the conditioning front end and the vocoder stay fp32
    assert gpt.conditioning_encoder.init.weight.dtype == torch.float32
    assert bf16.model.hifigan_decoder.waveform_decoder.conv_pre.weight.dtype == torch.float32

    voice = bf16.speaker("Random Speaker")
    params = SamplingParams(seed=0, min_new_codes=4, max_new_codes=4)
    out = bf16.synthesize("hello", "en", voice, params)
    assert len(out.codes) == 4
    assert out.wav.dtype.name == "float32"
    assert out.wav.shape == (256 * int(4 * 4 * 24000 / 22050),)
    assert torch.isfinite(torch.from_numpy(out.wav)).all()
    assert float(abs(out.wav).max()) > 0
