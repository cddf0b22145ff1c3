"""Chinese numbers and pinyin (``xtts_core.text.chinese``): each kind of number, the reference's
quirks that training text carried, pinyin form, and never raising. Parity with the reference
itself is in ``parity/test_text_parity.py``."""

from __future__ import annotations

import pytest

pytest.importorskip("pypinyin")

from hypothesis import given, settings
from hypothesis import strategies as st

from xtts_core.text.chinese import normalize_numbers, spell_digits, spell_quantity, to_pinyin
from xtts_core.text.normalize import normalize


@pytest.mark.parametrize(
    ("number", "spoken"),
    [
        ("0", "零"),
        ("7", "七"),
        ("10", "十"),  # a leading 一十 is read 十
        ("15", "十五"),
        ("20", "二十"),  # 二 before ten ...
        ("200", "两百"),  # ... 两 before the bigger units
        ("1205", "一千两百零五"),
        ("100000", "十万"),
        ("220000", "二十二万"),
        ("100000000", "一亿"),
        ("1" + "0" * 44, "一载"),
        ("1" + "0" * 88, "一载载"),  # above 10^44: groups of 44 digits, each after a 载
        ("12.5", "十二点五"),
        ("2.25", "二点二五"),  # decimals keep 二
        ("0.5", "零点五"),
        ("00.5", "零点五"),
        ("010", "零一十"),  # leading zeros read as the reference reads them
        ("00", ""),  # all zeros dropped: nothing is said
        ("０５", "零十五"),  # only ASCII zeros are dropped; full-width digits are digits
    ],
)
def test_quantities(number: str, spoken: str) -> None:
    assert spell_quantity(number) == spoken


def test_digits_are_read_one_by_one_without_separators() -> None:
    assert spell_digits("2024") == "二零二四"
    assert spell_digits("010-6234", "-") == "零一零六二三四"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("我有3个苹果和15个梨", "我有三个苹果和十五个梨"),  # before a measure word: a quantity
        ("房间号是2046", "房间号是二零四六"),  # 4 to 32 digits: digit by digit
        ("第22届", "第二十二届"),  # shorter runs: a quantity
        ("1200万人", "一千两百万人"),  # money units count: 万 千 百 亿 元 块 角 毛 分
        ("花了3.5万元和5角", "花了三点五万元和五角"),
        ("2024年5月3日", "二零二四年五月三日"),  # the year digit by digit
        ("12月25号", "十二月二十五号"),
        ("打13812345678", "打一三八一二三四五六七八"),  # mobile numbers
        ("打+86 13912345678", "打八六一三九一二三四五六七八"),
        ("电话010-62345678", "电话零一零六二三四五六七八"),  # landlines
        ("答案是3/4", "答案是四分之三"),
        ("涨了12.5%", "涨了百分之十二点五"),
        ("涨了５０％", "涨了百分之五十零"),  # full-width: ％ is folded, ０ is not an ASCII zero
        ("P2P和B2B", "P2P和B2B"),  # Latin-2-Latin words keep their 2
        ("12.5.3", "十二点五,三"),
    ],
)
def test_numbers(text: str, spoken: str) -> None:
    assert normalize_numbers(text) == spoken


def test_punctuation_becomes_commas() -> None:
    assert normalize_numbers("“你好”！$&@#%…《书》") == ",你好,,,,,,,,,书,"


def test_each_pass_replaces_the_first_occurrence_of_what_it_found() -> None:
    """The reference's quirk, kept: ``5`` found before 个 is replaced where it first occurs."""
    assert normalize_numbers("15 和 5个") == "一五 和 五个"
    assert normalize_numbers("1235月 和 5月") == "一百二十三五月 和 五月"


def test_pinyin_has_tone_numbers_and_five_for_the_neutral_tone() -> None:
    assert to_pinyin("中文") == "zhong1wen2"
    assert to_pinyin("你好吗") == "ni3hao3ma5"
    assert to_pinyin("你好, world 1") == "ni3hao3, world 1"  # other text is kept as it is


def test_normalize_chinese_end_to_end() -> None:
    assert normalize('他说:"我有3个苹果 & 2只猫。"', "zh") == (
        "ta1shuo1,wo3you3san1ge4ping2guo3 , er4zhi3mao1,"
    )
    assert normalize("温度30°, 共£5", "zh") == "wen1du4san1shi2 du4 , gong4 ying1bang4 wu3"


def test_very_long_numbers_never_raise() -> None:
    spoken = normalize_numbers("有" + "1" * 60_000 + "个")
    assert spoken.startswith("有一千一百") and spoken.endswith("个")
    assert normalize_numbers("9" * 100_000) == "九" * 100_000


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("0123456789０５.%％/-+ 年月日号元万个多二aP，中"), max_size=60)
)
def test_number_heavy_text_never_raises(text: str) -> None:
    assert not set(normalize_numbers(text)) & set("013456789０５")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_normalizes_without_raising(text: str) -> None:
    assert isinstance(normalize(text, "zh"), str)
