"""``<break>`` pauses and SSML stripping (:mod:`xtts_core.text.markup`), and ``expand`` off in
the normaliser and the tokenizer (``apply_text_normalization: off``)."""

from __future__ import annotations

import pytest

from xtts_core.text.markup import MAX_BREAK_MS, Pause, open_tag_start, parse_markup


@pytest.mark.parametrize("ssml", [False, True])
def test_breaks_are_pauses_whether_or_not_ssml_is_on(ssml: bool) -> None:
    parts = parse_markup("Hello. <break time=\"1.5s\"/> World <BREAK time='250ms' />!", ssml=ssml)
    assert parts == ["Hello. ", Pause(1500, 1500.0), " World ", Pause(250, 250.0), "!"]


def test_long_breaks_are_clamped_and_say_so() -> None:
    (pause,) = parse_markup('<break time="10s"/>', ssml=False)
    assert pause == Pause(MAX_BREAK_MS, 10000.0) and pause.clamped
    assert not Pause(500, 500.0).clamped


def test_a_break_without_a_readable_time_is_dropped() -> None:
    assert parse_markup('a <break/> b <break time="soon"/> c', ssml=False) == ["a ", " b ", " c"]


def test_ssml_tags_are_stripped_keeping_their_text_and_entities_decoded() -> None:
    text = (
        '<speak><prosody rate="slow">Slow</prosody> and <emphasis level="strong">loud</emphasis>, '
        '<say-as interpret-as="characters">abc</say-as> <phoneme alphabet="ipa" ph="tə">to</phoneme>'
        " <unknown-tag x='1'>AT&amp;T</unknown-tag> &lt;3</speak>"
    )
    assert parse_markup(text, ssml=True) == ["Slow and loud, abc to AT&T <3"]


def test_without_ssml_other_tags_and_entities_are_spoken_as_sent() -> None:
    text = "<speak>AT&amp;T</speak>"
    assert parse_markup(text, ssml=False) == [text]
    assert parse_markup("a < b and c > d", ssml=True) == ["a < b and c > d"]  # not tags


def test_open_tag_start_finds_a_tag_still_being_sent() -> None:
    assert open_tag_start('Wait <break time="1') == 5
    assert open_tag_start('Wait <break time="1s"/> now') is None
    assert open_tag_start("a < b") is None
