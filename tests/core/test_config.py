"""XttsConfig: reading coqui config.json files (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xtts_core.config import XTTS_V2_LANGUAGES, XttsConfig
from xtts_core.errors import CheckpointError

#: The model_args of the released XTTS-v2 config.json that decide sizes and ids (abridged).
RELEASED_MODEL_ARGS: dict[str, Any] = {
    "gpt_batch_size": 1,
    "enable_redaction": False,
    "kv_cache": True,
    "gpt_checkpoint": None,
    "clvp_checkpoint": None,
    "decoder_checkpoint": None,
    "num_chars": 255,
    "tokenizer_file": "",
    "gpt_max_audio_tokens": 605,
    "gpt_max_text_tokens": 402,
    "gpt_max_prompt_tokens": 70,
    "gpt_layers": 30,
    "gpt_n_model_channels": 1024,
    "gpt_n_heads": 16,
    "gpt_number_text_tokens": 6681,
    "gpt_start_text_token": None,
    "gpt_stop_text_token": None,
    "gpt_num_audio_tokens": 1026,
    "gpt_start_audio_token": 1024,
    "gpt_stop_audio_token": 1025,
    "gpt_code_stride_len": 1024,
    "gpt_use_masking_gt_prompt_approach": True,
    "gpt_use_perceiver_resampler": True,
    "input_sample_rate": 22050,
    "output_sample_rate": 24000,
    "output_hop_length": 256,
    "decoder_input_dim": 1024,
    "d_vector_dim": 512,
    "cond_d_vector_in_each_upsampling_layer": True,
    "duration_const": 102400,
}

#: The released file's top level, trimmed to the keys that matter plus two trainer keys.
RELEASED_CONFIG_TEXT = (
    '{"output_path": "output", "logger_uri": null, "run_name": "run",'
    ' "model": "xtts", "model_args": ' + json.dumps(RELEASED_MODEL_ARGS) + ","
    ' "audio": {"sample_rate": 22050, "output_sample_rate": 24000},'
    ' "languages": ' + json.dumps(list(XTTS_V2_LANGUAGES)) + ","
    ' "temperature": 0.75, "length_penalty": 1.0, "repetition_penalty": 5.0, "top_k": 50,'
    ' "top_p": 0.85, "num_gpt_outputs": 1, "gpt_cond_len": 30, "gpt_cond_chunk_len": 4,'
    ' "max_ref_len": 30, "sound_norm_refs": false,'
    ' "max_audio_len": Infinity, "max_text_len": Infinity, "lr": -Infinity}'
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_released_config_with_infinity_parses(tmp_path: Path) -> None:
    cfg = XttsConfig.from_json_file(write(tmp_path / "config.json", RELEASED_CONFIG_TEXT))

    g = cfg.gpt
    assert (g.layers, g.width, g.heads) == (30, 1024, 16)
    assert (g.num_audio_tokens, g.start_audio_token, g.stop_audio_token) == (1026, 1024, 1025)
    assert (g.max_audio_tokens, g.max_text_tokens, g.code_stride_len) == (605, 402, 1024)
    assert g.use_perceiver_resampler is True
    assert g.number_text_tokens == 6681
    assert (g.start_text_token, g.stop_text_token) == (None, None)
    assert cfg.sampling.repetition_penalty == 5.0
    assert cfg.languages == XTTS_V2_LANGUAGES
    assert (cfg.sample_rate, cfg.output_sample_rate) == (22050, 24000)
    assert cfg.decoder.output_sample_rate == 24000


def test_derived_sizes() -> None:
    cfg = XttsConfig.from_dict({"model_args": {"gpt_max_audio_tokens": 605}})
    assert cfg.gpt.audio_positions == 608  # 605 + 2 + 1 conditioning input, as coqui
    assert cfg.gpt.text_positions == 404
    assert cfg.gpt.max_new_codes == 602


@pytest.mark.parametrize("raw", [{}, {"model_args": {}}, {"model_args": None, "audio": None}])
def test_missing_keys_take_xtts_args_defaults(raw: dict[str, Any]) -> None:
    cfg = XttsConfig.from_dict(raw)

    g = cfg.gpt
    assert (g.layers, g.width, g.heads) == (30, 1024, 16)
    # coqui's XttsArgs defaults are the 8194-code layout, not the released file's 1026
    assert (g.num_audio_tokens, g.start_audio_token, g.stop_audio_token) == (8194, 8192, 8193)
    assert (g.max_audio_tokens, g.max_text_tokens) == (605, 402)
    assert g.use_perceiver_resampler is False
    assert g.number_text_tokens is None
    s = cfg.sampling
    assert (s.temperature, s.length_penalty, s.repetition_penalty, s.top_k, s.top_p) == (
        0.75, 1.0, 10.0, 50, 0.85,
    )  # fmt: skip
    c = cfg.conditioning
    assert (c.gpt_cond_len, c.gpt_cond_chunk_len, c.max_ref_len, c.sound_norm_refs) == (
        30, 4, 30, False,
    )  # fmt: skip
    assert cfg.languages == XTTS_V2_LANGUAGES
    assert (cfg.decoder.decoder_input_dim, cfg.decoder.d_vector_dim) == (1024, 512)


def test_null_model_args_take_defaults() -> None:
    cfg = XttsConfig.from_dict({"model_args": {"gpt_layers": None, "gpt_num_audio_tokens": None}})
    assert cfg.gpt.layers == 30
    assert cfg.gpt.num_audio_tokens == 8194


def test_fine_tune_with_8194_codes(tmp_path: Path) -> None:
    raw = json.loads(RELEASED_CONFIG_TEXT)
    raw["model_args"] |= {
        "gpt_num_audio_tokens": 8194,
        "gpt_start_audio_token": 8192,
        "gpt_stop_audio_token": 8193,
        "gpt_layers": 12,
    }
    raw["languages"] = ["ru", "en"]
    cfg = XttsConfig.from_json_file(write(tmp_path / "config.json", json.dumps(raw)))

    assert (cfg.gpt.num_audio_tokens, cfg.gpt.start_audio_token, cfg.gpt.stop_audio_token) == (
        8194, 8192, 8193,
    )  # fmt: skip
    assert cfg.gpt.layers == 12
    assert cfg.languages == ("ru", "en")


def test_infinite_top_level_values_are_ignored_not_validated() -> None:
    # a trainer key that shares a name with nothing we read, and one that would break a field
    cfg = XttsConfig.from_dict({"max_text_len": float("inf"), "top_p": float("inf")})
    assert cfg.sampling.top_p == 0.85


def test_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.json"
    with pytest.raises(CheckpointError, match="not found") as info:
        XttsConfig.from_json_file(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"model_args": {', id="truncated-json"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"", id="empty"),
    ],
)
def test_unreadable_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot read config file") as info:
        XttsConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        XttsConfig.from_json_file(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"config"', "null", "42"])
def test_non_object_file_names_it(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "config.json", text)
    with pytest.raises(CheckpointError, match="does not hold a JSON object") as info:
        XttsConfig.from_json_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "model_args",
    [{"gpt_layers": 0}, {"gpt_n_heads": "many"}, {"gpt_num_audio_tokens": 2}],
)
def test_invalid_values_name_the_file(tmp_path: Path, model_args: dict[str, Any]) -> None:
    path = write(tmp_path / "config.json", json.dumps({"model_args": model_args}))
    with pytest.raises(CheckpointError, match="invalid XTTS config") as info:
        XttsConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_to_dict_round_trip(tmp_path: Path) -> None:
    cfg = XttsConfig.from_json_file(write(tmp_path / "config.json", RELEASED_CONFIG_TEXT))

    assert XttsConfig.from_dict(cfg.to_dict()) == cfg
    # and through a file, with the trainer's Infinity values added back
    raw = cfg.to_dict() | {"max_audio_len": float("inf")}
    again = XttsConfig.from_json_file(write(tmp_path / "again.json", json.dumps(raw)))
    assert again == cfg
    assert "Infinity" in (tmp_path / "again.json").read_text(encoding="utf-8")


def test_to_dict_is_coqui_layout() -> None:
    raw = XttsConfig.from_dict({}).to_dict()
    assert raw["model"] == "xtts"
    assert raw["model_args"]["gpt_n_model_channels"] == 1024
    assert raw["model_args"]["gpt_stop_audio_token"] == 8193
    assert raw["audio"] == {"sample_rate": 22050, "output_sample_rate": 24000}
    assert raw["languages"] == list(XTTS_V2_LANGUAGES)
    assert json.loads(json.dumps(raw)) == raw  # plain JSON values only


def test_with_text_vocab_sets_text_ids_only() -> None:
    cfg = XttsConfig.from_dict({})
    sized = cfg.with_text_vocab(300, 3, 0)
    assert (sized.gpt.number_text_tokens, sized.gpt.start_text_token) == (300, 3)
    assert sized.gpt.stop_text_token == 0
    assert (
        sized.gpt.model_copy(
            update={"number_text_tokens": None, "start_text_token": None, "stop_text_token": None}
        )
        == cfg.gpt
    )
    assert cfg.gpt.number_text_tokens is None  # the original is unchanged (frozen)
