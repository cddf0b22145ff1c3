"""The URL and signed headers of a stream the broker opens at a balancer."""

from __future__ import annotations

import pytest

from xtts_broker.balancer_target import balancer_stream_target
from xtts_core.cluster import OriginError, verify_request

SECRET = "cluster-secret"


def test_the_voice_is_percent_encoded_and_the_query_re_encoded() -> None:
    url, _ = balancer_stream_target(
        "https://gpu-1:8000", "a b/../c", "stream-input", "model_id=x&output_format=pcm_24000&q=1 2",
        secret=SECRET, session_id="s1", api_key=None,
    )  # fmt: skip
    assert url == (
        "wss://gpu-1:8000/v1/text-to-speech/a%20b%2F..%2Fc/stream-input"
        "?model_id=x&output_format=pcm_24000&q=1+2"
    )


def test_no_query_means_no_question_mark() -> None:
    url, _ = balancer_stream_target(
        "http://10.0.0.5:8000", "default", "multi-stream-input", "",
        secret=SECRET, session_id="s1", api_key=None,
    )  # fmt: skip
    assert url == "ws://10.0.0.5:8000/v1/text-to-speech/default/multi-stream-input"


def test_the_signature_covers_the_path_and_session_and_the_key_is_passed_on() -> None:
    _, headers = balancer_stream_target(
        "http://b:8000", "default", "stream-input", "", secret=SECRET, session_id="abc",
        api_key="client-key",
    )  # fmt: skip
    assert headers["xi-api-key"] == "client-key"
    path = "/v1/text-to-speech/default/stream-input"
    assert verify_request(SECRET, "GET", path, headers) == "abc"
    with pytest.raises(OriginError):
        verify_request(SECRET, "GET", "/v1/text-to-speech/other/stream-input", headers)
    _, without_key = balancer_stream_target(
        "http://b:8000", "default", "stream-input", "", secret=SECRET, session_id="abc",
        api_key=None,
    )  # fmt: skip
    assert "xi-api-key" not in without_key
