"""xtts_core.protocol: the ElevenLabs websocket messages, query and formats (torch-free).

The JSON fixtures are copied from shared/spec/elevenlabs-protocol.md (section in each comment);
placeholders the spec writes as ``"<base64>"``/``"<b64>"`` are replaced by real base64, because
the audio field is validated.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

import xtts_core.protocol as protocol
from xtts_core.errors import ProtocolError, XttsError
from xtts_core.protocol import (
    DEFAULT_CHUNK_LENGTH_SCHEDULE,
    Alignment,
    AudioFormat,
    AudioOutput,
    AudioOutputMulti,
    CloseCode,
    CloseConnection,
    CloseContext,
    CloseSocket,
    ErrorCode,
    ErrorMessage,
    FinalOutput,
    FinalOutputMulti,
    FlushContext,
    GenerationConfig,
    InitialiseContext,
    InitializeConnection,
    KeepContextAlive,
    OutputFormat,
    SendText,
    SendTextMulti,
    StreamInputQuery,
    VoiceSettings,
    close_reason,
    parse_client_message,
    parse_output_format,
    parse_server_message,
)

B64 = "SGVsbG8="  # stands in for the spec's "<base64>" placeholders

# --- spec examples: stream-input client messages ---------------------------------------------------

# §2.3 (a), verbatim (the "…" values are the spec's)
SPEC_INIT = {
    "text": " ",
    "voice_settings": {
        "stability": 0.5,
        "similarity_boost": 0.8,
        "style": 0.0,
        "use_speaker_boost": True,
        "speed": 1.0,
    },
    "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]},
    "pronunciation_dictionary_locators": [{"pronunciation_dictionary_id": "…", "version_id": "…"}],
    "xi_api_key": "…",
    "authorization": "Bearer …",
}
# §2.7 typical exchange
SPEC_EXCHANGE = [
    (
        '{"text":" ","voice_settings":{"stability":0.5,"similarity_boost":0.8},'
        '"generation_config":{"chunk_length_schedule":[120,160,250,290]}}',
        InitializeConnection,
    ),
    ('{"text":"Hello there, "}', SendText),
    ('{"text":"how are you today? "}', SendText),
    ('{"text":""}', CloseConnection),
]
# §5.2 what the official SDK sends
SPEC_SDK = [
    (
        {
            "text": " ",
            "try_trigger_generation": True,
            "voice_settings": None,
            "generation_config": {"chunk_length_schedule": [50]},
        },
        InitializeConnection,
    ),
    ({"text": "Hello from the official SDK, ", "try_trigger_generation": True}, SendText),
    ({"text": ""}, CloseConnection),
]

# --- spec examples: multi-stream-input client messages (§3.1, §3.4) ---------------------------------

SPEC_MULTI = [
    # §3.1 table
    (
        {
            "text": " ",
            "context_id": "c1",
            "voice_settings": {},
            "generation_config": {},
            "pronunciation_dictionary_locators": [],
            "xi_api_key": "…",
            "authorization": "…",
        },
        InitialiseContext,
    ),
    ({"text": "Hello. ", "context_id": "c1"}, SendTextMulti),
    ({"text": "Hello. ", "context_id": "c1", "flush": True}, FlushContext),
    ({"context_id": "c1", "flush": True}, FlushContext),
    ({"text": "", "context_id": "c1", "flush": True}, FlushContext),
    ({"context_id": "c1", "close_context": True}, CloseContext),
    ({"text": "", "context_id": "c1"}, KeepContextAlive),
    ({"close_socket": True}, CloseSocket),
    ({"text": ""}, KeepContextAlive),
    # §3.4 pipecat
    (
        {
            "text": " ",
            "context_id": "32cc…",
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
        },
        InitialiseContext,
    ),
    (
        {"text": "Hello world. This is a local test of the server.", "context_id": "32cc…"},
        SendTextMulti,
    ),
    ({"context_id": "32cc…", "flush": True}, FlushContext),
    ({"context_id": "32cc…", "close_context": True}, CloseContext),
    ({"close_socket": True}, CloseSocket),
    # §3.4 livekit
    ({"text": " ", "voice_settings": {}, "context_id": "3345c7369137"}, InitialiseContext),
    (
        {
            "text": "Hello world. This is a local test of the server. ",
            "context_id": "3345c7369137",
            "flush": True,
        },
        FlushContext,
    ),
    ({"text": "", "context_id": "3345c7369137", "flush": True}, FlushContext),
    ({"context_id": "3345c7369137", "close_context": True}, CloseContext),
]

# --- spec examples: server messages ----------------------------------------------------------------

_ALIGN = {
    "chars": ["H", "e", "l", "l", "o", " "],
    "charStartTimesMs": [0, 3, 7, 9, 11, 12],
    "charDurationsMs": [3, 4, 2, 2, 1, 1],
}
SPEC_AUDIO = {
    "audio": B64,
    "isFinal": None,
    "normalizedAlignment": _ALIGN,
    "alignment": _ALIGN,
}  # §2.4.1
SPEC_FINAL = {"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None}  # §7
SPEC_AUDIO_MULTI = {**SPEC_AUDIO, "contextId": "c1", "context_id": "c1"}  # §7
SPEC_FINAL_MULTI = {"isFinal": True, "contextId": "c1", "context_id": "c1", "is_final": True}  # §7
SPEC_ERROR = {  # §2.4.3 with the livekit #218 payload
    "message": (
        "Have not received a new text input within the timeout of 20 seconds. Streaming input "
        "terminated. Please make sure to either feed the input in the timely manner, or to send "
        'the end of input text (empty string "") when done.'
    ),
    "error": "input_timeout_exceeded",
    "code": 1008,
}


def _dump(raw: str | dict[str, Any]) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw)


# --- client messages -------------------------------------------------------------------------------


def test_spec_first_message_round_trips() -> None:
    msg = parse_client_message(json.dumps(SPEC_INIT))
    assert isinstance(msg, InitializeConnection)
    assert msg.voice_settings == VoiceSettings(similarity_boost=0.8)
    assert msg.generation_config == GenerationConfig()
    assert msg.pronunciation_dictionary_locators is not None
    assert msg.pronunciation_dictionary_locators[0].pronunciation_dictionary_id == "…"
    assert (msg.xi_api_key, msg.authorization) == ("…", "Bearer …")
    assert json.loads(msg.to_json()) == {**SPEC_INIT, "try_trigger_generation": False}
    assert parse_client_message(msg.to_json()) == msg


@pytest.mark.parametrize(("raw", "kind"), SPEC_EXCHANGE + SPEC_SDK)
def test_stream_input_examples_parse_to_their_kind(raw: str | dict[str, Any], kind: type) -> None:
    msg = parse_client_message(_dump(raw))
    assert type(msg) is kind
    assert parse_client_message(msg.to_json()) == msg
    wire = json.loads(msg.to_json())
    for key, value in json.loads(_dump(raw)).items():
        if value is not None and key != "voice_settings":  # voice_settings gains its defaults
            assert wire[key] == value


def test_sdk_first_message_keeps_its_fields() -> None:
    msg = parse_client_message(json.dumps(SPEC_SDK[0][0]))
    assert isinstance(msg, InitializeConnection)
    assert msg.try_trigger_generation is True
    assert msg.voice_settings is None
    assert msg.generation_config is not None
    assert msg.generation_config.chunk_length_schedule == [50]


@pytest.mark.parametrize(("raw", "kind"), SPEC_MULTI)
def test_multi_stream_examples_parse_to_their_kind(raw: dict[str, Any], kind: type) -> None:
    msg = parse_client_message(json.dumps(raw), multi_context=True)
    assert type(msg) is kind
    assert parse_client_message(msg.to_json(), multi_context=True) == msg
    wire = json.loads(msg.to_json())
    for key, value in raw.items():
        if key in ("text", "context_id", "flush", "close_context", "close_socket", "xi_api_key"):
            assert wire[key] == value


def test_multi_message_fields() -> None:
    flush = parse_client_message(
        '{"text": "Hi. ", "context_id": "c", "flush": true}', multi_context=True
    )
    assert isinstance(flush, FlushContext)
    assert (flush.context_id, flush.text) == ("c", "Hi. ")
    bare = parse_client_message('{"context_id": "c", "flush": true}', multi_context=True)
    assert isinstance(bare, FlushContext)
    assert bare.text is None
    keep = parse_client_message('{"text": ""}', multi_context=True)
    assert isinstance(keep, KeepContextAlive)
    assert keep.context_id is None  # pipecat's context-less keep-alive


@pytest.mark.parametrize(
    ("raw", "multi", "field", "value"),
    [
        ('{"text": "", "contextId": "c9"}', True, "context_id", "c9"),
        ('{"contextId": "c9", "close_context": true}', True, "context_id", "c9"),
        ('{"text": " ", "xi-api-key": "k"}', False, "xi_api_key", "k"),
        ('{"text": " ", "context_id": "c", "xi-api-key": "k"}', True, "xi_api_key", "k"),
    ],
)
def test_client_aliases(raw: str, multi: bool, field: str, value: str) -> None:
    assert getattr(parse_client_message(raw, multi_context=multi), field) == value


def test_generator_config_is_an_alias_of_generation_config() -> None:
    msg = parse_client_message(
        '{"text": "Hi ", "generator_config": {"chunk_length_schedule": [100]}}'
    )
    assert isinstance(msg, SendText)
    assert msg.generation_config == GenerationConfig(chunk_length_schedule=[100])
    assert json.loads(msg.to_json())["generator_config"] == {"chunk_length_schedule": [100]}


def test_older_dictionary_id_spelling() -> None:
    raw = '{"text": " ", "pronunciation_dictionary_locators": [{"dictionary_id": "d", "version_id": null}]}'
    msg = parse_client_message(raw)
    assert isinstance(msg, InitializeConnection)
    assert msg.pronunciation_dictionary_locators is not None
    assert msg.pronunciation_dictionary_locators[0].pronunciation_dictionary_id == "d"


def test_defaults_and_nulls() -> None:
    assert VoiceSettings() == VoiceSettings(
        stability=0.5, similarity_boost=0.75, style=0.0, use_speaker_boost=True, speed=1.0
    )
    assert VoiceSettings.model_validate({"stability": None, "speed": None}) == VoiceSettings()
    assert GenerationConfig().chunk_length_schedule == list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
    assert GenerationConfig.model_validate({"chunk_length_schedule": None}) == GenerationConfig()
    assert GenerationConfig.model_validate({"chunk_length_schedule": []}) == GenerationConfig()
    msg = parse_client_message('{"text": "Hi ", "flush": null, "try_trigger_generation": null}')
    assert isinstance(msg, SendText)
    assert (msg.flush, msg.try_trigger_generation) == (False, False)


def test_chunk_schedule_is_clamped_to_documented_bounds() -> None:
    assert GenerationConfig(chunk_length_schedule=[10, 120, 900]).chunk_length_schedule == [
        50,
        120,
        500,
    ]


def test_unknown_fields_are_ignored() -> None:
    msg = parse_client_message('{"text": "Hi ", "context_id": "x", "model": 3, "flush": true}')
    assert msg == SendText(text="Hi ", flush=True)


def test_space_with_flush_is_a_flush_not_a_keep_alive() -> None:
    msg = parse_client_message('{"text": " ", "flush": true}')
    assert msg == SendText(text=" ", flush=True)


def test_bytes_are_accepted_as_utf8() -> None:
    assert parse_client_message('{"text": "héllo "}'.encode()) == SendText(text="héllo ")


@pytest.mark.parametrize(
    ("raw", "multi", "expected"),
    [
        ("not json", False, "invalid JSON: Expecting value (line 1, column 1)"),
        ('{"text": "a"', False, "invalid JSON"),
        ('{"text": NaN}', False, "invalid JSON: NaN is not valid JSON"),
        (b"\xff\xfe", False, "message is not valid UTF-8"),
        ("[1, 2]", False, "message must be a JSON object, got array"),
        ('"text"', False, "message must be a JSON object, got string"),
        ("null", True, "message must be a JSON object, got null"),
        ("{}", False, "text: field required"),
        ('{"text": null}', False, "text: field required"),
        ('{"flush": true}', False, "text: field required"),
        ('{"text": 5}', False, "text: must be a string, got number"),
        ('{"text": ["a"]}', True, "text: must be a string, got array"),
        (
            '{"text": "a", "flush": "yes"}',
            False,
            "flush: Input should be a valid boolean, got string",
        ),
        ('{"text": "a", "flush": 1}', True, "flush: must be a boolean, got number"),
        ('{"close_socket": "true"}', True, "close_socket: must be a boolean, got string"),
        (
            '{"text": " ", "voice_settings": {"stability": 2}}',
            False,
            "voice_settings.stability: Input should be less than or equal to 1",
        ),
        (
            '{"text": " ", "voice_settings": {"speed": 2.0}}',
            False,
            "voice_settings.speed: Input should be less than or equal to 1.2",
        ),
        (
            '{"text": " ", "voice_settings": "fast"}',
            False,
            "voice_settings: Input should be a valid dictionary",
        ),
        (
            '{"text": " ", "voice_settings": {"use_speaker_boost": "no"}}',
            False,
            "voice_settings.use_speaker_boost: Input should be a valid boolean",
        ),
        (
            '{"text": " ", "generation_config": {"chunk_length_schedule": ["a"]}}',
            False,
            "generation_config.chunk_length_schedule.0: Input should be a valid integer",
        ),
        (
            '{"text": " ", "xi_api_key": 42}',
            False,
            "xi_api_key: Input should be a valid string, got number",
        ),
        (
            '{"text": "a", "context_id": 7}',
            True,
            "context_id: Input should be a valid string, got number",
        ),
        (
            '{"context_id": "c"}',
            True,
            "message must carry text, flush: true, close_context: true or close_socket: true",
        ),
        ('{"context_id": "c", "close_context": false}', True, "message must carry text"),
        ('{"foo": 1}', True, "message must carry text"),
    ],
)
def test_bad_messages_fail_with_one_readable_line(
    raw: str | bytes, multi: bool, expected: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw, multi_context=multi)
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "pydantic" not in message
    assert "For further information" not in message
    assert info.value.error == ErrorCode.INVALID_MESSAGE.value
    assert info.value.code == CloseCode.POLICY_VIOLATION
    assert isinstance(info.value, XttsError)


def test_several_problems_are_reported_on_one_line() -> None:
    raw = '{"text": " ", "voice_settings": {"stability": 2, "style": -1, "speed": 9, "similarity_boost": 5}}'
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert str(info.value) == (
        "voice_settings.stability: Input should be less than or equal to 1; "
        "voice_settings.similarity_boost: Input should be less than or equal to 1; "
        "voice_settings.style: Input should be greater than or equal to 0; and 1 more"
    )


def test_message_models_reject_the_other_kinds_text() -> None:
    with pytest.raises(ValidationError):
        SendText(text="")
    with pytest.raises(ValidationError):
        SendTextMulti(text="")


# --- server messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "multi", "kind"),
    [
        (SPEC_AUDIO, False, AudioOutput),
        (SPEC_FINAL, False, FinalOutput),
        (SPEC_AUDIO_MULTI, True, AudioOutputMulti),
        (SPEC_FINAL_MULTI, True, FinalOutputMulti),
        (SPEC_ERROR, False, ErrorMessage),
        (SPEC_ERROR, True, ErrorMessage),
    ],
)
def test_server_templates_round_trip(example: dict[str, Any], multi: bool, kind: type) -> None:
    msg = parse_server_message(json.dumps(example), multi_context=multi)
    assert type(msg) is kind
    assert json.loads(msg.to_json()) == example


def test_minimal_final_messages_parse() -> None:
    assert parse_server_message('{"isFinal": true}') == FinalOutput()
    final = parse_server_message('{"isFinal": true, "contextId": "c1"}', multi_context=True)
    assert final == FinalOutputMulti(context_id="c1")
    assert (
        parse_server_message('{"is_final": true, "context_id": "c1"}', multi_context=True) == final
    )


def test_audio_output_builds_from_bytes() -> None:
    align = Alignment(chars=["H", "i"], char_start_times_ms=[0, 40], char_durations_ms=[40, 60])
    msg = AudioOutput.from_audio(b"\x01\x02\x03", alignment=align, normalized_alignment=align)
    assert msg.audio_bytes() == b"\x01\x02\x03"
    wire = json.loads(msg.to_json())
    assert list(wire) == ["audio", "isFinal", "normalizedAlignment", "alignment"]
    assert wire["isFinal"] is None
    assert wire["alignment"] == {
        "chars": ["H", "i"],
        "charStartTimesMs": [0, 40],
        "charDurationsMs": [40, 60],
    }
    multi = AudioOutputMulti.from_audio(b"\x00", context_id="c2")
    assert (
        json.loads(multi.to_json())["contextId"]
        == json.loads(multi.to_json())["context_id"]
        == "c2"
    )


def test_alignment_accepts_the_2025_spellings_and_emits_charDurationsMs() -> None:
    raw = {"chars": ["a"], "charsStartTimesMs": [0], "charsDurationsMs": [5]}
    align = Alignment.model_validate(raw)
    assert align == Alignment(chars=["a"], char_start_times_ms=[0], char_durations_ms=[5])
    assert align.model_dump(by_alias=True) == {
        "chars": ["a"],
        "charStartTimesMs": [0],
        "charDurationsMs": [5],
    }


def test_multi_audio_accepts_either_context_key() -> None:
    for key in ("contextId", "context_id"):
        msg = parse_server_message(json.dumps({"audio": B64, key: "c"}), multi_context=True)
        assert isinstance(msg, AudioOutputMulti)
        assert msg.context_id == "c"


@pytest.mark.parametrize(
    ("raw", "multi", "expected"),
    [
        ('{"audio": "not base64!"}', False, "audio: audio must be base64"),
        ('{"audio": ""}', False, "audio: String should have at least 1 character"),
        ('{"audio": "' + B64 + '", "isFinal": false}', False, "isFinal: Input should be None"),
        ('{"audio": "' + B64 + '"}', True, "contextId: field required"),
        (
            '{"audio": "'
            + B64
            + '", "alignment": {"chars": ["a"], "charStartTimesMs": [], "charDurationsMs": [1]}}',
            False,
            "alignment: chars, charStartTimesMs and charDurationsMs must have the same length (got 1, 0, 1)",
        ),
    ],
)
def test_bad_server_messages(raw: str, multi: bool, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_server_message(raw, multi_context=multi)
    assert str(info.value) == expected


def test_error_message_helpers() -> None:
    timeout = ErrorMessage.input_timeout(20)
    assert json.loads(timeout.to_json()) == SPEC_ERROR
    reason = timeout.close_reason()
    assert len(reason.encode()) == 123
    assert SPEC_ERROR["message"].startswith(reason)
    too_many = ErrorMessage.max_active_conversations()
    assert too_many.error == "max_active_conversations"
    assert too_many.message.startswith(
        "Maximum simultaneous contexts per WebSocket connection exceeded (5)."
    )
    exc = protocol.invalid_message("text: field required")
    assert ErrorMessage.from_error(exc) == ErrorMessage(
        message="text: field required", error="invalid_message", code=1008
    )


def test_close_reason_cuts_on_a_character_boundary() -> None:
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)  # 2 bytes each: 61 fit in 123 bytes
    assert cut == "é" * 61
    assert len(close_reason("€" * 100).encode()) <= 123


def test_protocol_error_is_one_line_and_pickles() -> None:
    exc = ProtocolError("bad\nthing", error="voice_not_found", code=1008)
    assert str(exc) == "bad thing"
    copy = pickle.loads(pickle.dumps(exc))
    assert (str(copy), copy.error, copy.code) == ("bad thing", "voice_not_found", 1008)


# --- close codes -----------------------------------------------------------------------------------


def test_close_codes() -> None:
    assert {code.name: int(code) for code in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "UNSUPPORTED_DATA": 1003,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "INTERNAL_ERROR": 1011,
        "TRY_AGAIN_LATER": 1013,
    }
    for code in CloseCode:
        assert code.meaning
    assert "EOS" in CloseCode.NORMAL.meaning
    assert CloseCode(1008) is CloseCode.POLICY_VIOLATION


# --- output formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pcm_8000", AudioFormat("pcm", 8000, None)),
        ("pcm_16000", AudioFormat("pcm", 16000, None)),
        ("pcm_22050", AudioFormat("pcm", 22050, None)),
        ("pcm_24000", AudioFormat("pcm", 24000, None)),
        ("pcm_32000", AudioFormat("pcm", 32000, None)),
        ("pcm_44100", AudioFormat("pcm", 44100, None)),
        ("pcm_48000", AudioFormat("pcm", 48000, None)),
        ("ulaw_8000", AudioFormat("ulaw", 8000, None)),
        ("alaw_8000", AudioFormat("alaw", 8000, None)),
        ("mp3_22050_32", AudioFormat("mp3", 22050, 32)),
        ("mp3_24000_48", AudioFormat("mp3", 24000, 48)),
        ("mp3_44100", AudioFormat("mp3", 44100, 128)),
        ("mp3_44100_32", AudioFormat("mp3", 44100, 32)),
        ("mp3_44100_192", AudioFormat("mp3", 44100, 192)),
        ("opus_48000_32", AudioFormat("opus", 48000, 32)),
        ("opus_48000_192", AudioFormat("opus", 48000, 192)),
    ],
)
def test_parse_output_format(value: str, expected: AudioFormat) -> None:
    parsed = parse_output_format(value)
    assert parsed == expected
    assert OutputFormat(value).audio_format == parsed


def test_every_spec_listed_format_is_served() -> None:
    # §2.8: the websocket enum plus what real clients send
    listed = [
        "mp3_22050_32",
        "mp3_44100_32",
        "mp3_44100_64",
        "mp3_44100_96",
        "mp3_44100_128",
        "mp3_44100_192",
        "pcm_8000",
        "pcm_16000",
        "pcm_22050",
        "pcm_24000",
        "pcm_44100",
        "ulaw_8000",
        "alaw_8000",
        "opus_48000_32",
        "opus_48000_64",
        "opus_48000_96",
        "opus_48000_128",
        "opus_48000_192",
        "pcm_32000",
        "pcm_48000",
        "mp3_24000_48",
        "mp3_44100",
    ]
    for value in listed:
        assert OutputFormat(value).streamable


@pytest.mark.parametrize(
    "value", ["pcm_11025", "pcm", "mp3_44100_320", "opus_24000_32", "PCM_16000", "", "wav"]
)
def test_parse_output_format_rejects_unknown_values(value: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_output_format(value)
    assert str(info.value).startswith(f"unsupported output_format {value!r}; supported: pcm_8000, ")
    assert "wav_" not in str(info.value)
    assert info.value.error == "unsupported_output_format"


def test_wav_is_only_for_whole_file_http() -> None:
    assert parse_output_format("wav_24000", streaming=False) == AudioFormat("wav", 24000, None)
    assert not OutputFormat.WAV_24000.streamable
    with pytest.raises(ProtocolError, match="whole-file HTTP endpoint"):
        parse_output_format("wav_24000")


# --- query parameters ------------------------------------------------------------------------------


def test_query_defaults() -> None:
    query = StreamInputQuery.parse("")
    assert query == StreamInputQuery(
        model_id=None,
        language_code=None,
        enable_logging=True,
        enable_ssml_parsing=False,
        output_format=OutputFormat.MP3_44100,
        inactivity_timeout=20,
        sync_alignment=False,
        auto_mode=False,
        apply_text_normalization="auto",
        seed=None,
        optimize_streaming_latency=0,
    )
    assert query.audio_format == AudioFormat("mp3", 44100, 128)


def test_query_from_real_clients() -> None:
    # §3.4: livekit's URL
    livekit = StreamInputQuery.parse(
        "model_id=eleven_turbo_v2_5&output_format=pcm_16000&enable_ssml_parsing=false&enable_logging=true"
        "&inactivity_timeout=180&apply_text_normalization=auto&sync_alignment=true&auto_mode=true"
    )
    assert livekit.model_id == "eleven_turbo_v2_5"
    assert livekit.audio_format == AudioFormat("pcm", 16000, None)
    assert (livekit.inactivity_timeout, livekit.sync_alignment, livekit.auto_mode) == (
        180,
        True,
        True,
    )
    # §2.2: SDK-style and hand-written URLs; unknown parameters ignored, the last repeat wins
    query = StreamInputQuery.parse(
        "output_format=mp3_44100_128&xi_api_key=k&single_use_token=t&authorization=Bearer%20x"
        "&seed=4294967295&optimize_streaming_latency=3&language_code=de&speed=1.1&language_code=fr"
    )
    assert (query.xi_api_key, query.single_use_token, query.authorization) == ("k", "t", "Bearer x")
    assert (query.seed, query.optimize_streaming_latency, query.language_code) == (
        4294967295,
        3,
        "fr",
    )
    assert StreamInputQuery.parse({"auto_mode": "True", "model_id": ""}).auto_mode is True
    assert StreamInputQuery.parse(b"sync_alignment=1").sync_alignment is True


def test_inactivity_timeout_is_clamped_to_180() -> None:
    assert StreamInputQuery.parse("inactivity_timeout=600").inactivity_timeout == 180
    assert StreamInputQuery.parse("inactivity_timeout=20.0").inactivity_timeout == 20


@pytest.mark.parametrize(
    ("query", "expected", "error"),
    [
        (
            "output_format=pcm_11025",
            "invalid query: unsupported output_format 'pcm_11025'; supported:",
            "unsupported_output_format",
        ),
        (
            "output_format=wav_8000",
            "invalid query: output_format 'wav_8000' is served only",
            "unsupported_output_format",
        ),
        (
            "inactivity_timeout=abc",
            "invalid query: inactivity_timeout: Input should be a valid integer, unable to parse string as an integer, got 'abc'",
            "invalid_message",
        ),
        (
            "inactivity_timeout=0",
            "invalid query: inactivity_timeout: Input should be greater than or equal to 1",
            "invalid_message",
        ),
        (
            "sync_alignment=maybe",
            "invalid query: sync_alignment: Input should be a valid boolean, unable to interpret input, got 'maybe'",
            "invalid_message",
        ),
        (
            "apply_text_normalization=always",
            "invalid query: apply_text_normalization: Input should be 'auto', 'on' or 'off', got 'always'",
            "invalid_message",
        ),
        (
            "seed=-1",
            "invalid query: seed: Input should be greater than or equal to 0",
            "invalid_message",
        ),
        (
            "optimize_streaming_latency=5",
            "invalid query: optimize_streaming_latency: Input should be less than or equal to 4",
            "invalid_message",
        ),
    ],
)
def test_bad_query_values(query: str, expected: str, error: str) -> None:
    with pytest.raises(ProtocolError) as info:
        StreamInputQuery.parse(query)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)
    assert info.value.error == error


# --- module hygiene --------------------------------------------------------------------------------


def test_all_names_exist() -> None:
    for name in protocol.__all__:
        assert hasattr(protocol, name), name


def test_plain_modules_do_not_import_torch() -> None:
    code = (
        "import sys, xtts_core.protocol, xtts_core.settings, xtts_core.errors; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'numpy' not in sys.modules, 'numpy imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
