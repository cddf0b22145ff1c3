"""A slim install: the engine speaks English without spaCy and the Japanese, Chinese and Korean
packages, and text in those languages fails with one line naming the extra to install.

Each test runs Python in a subprocess whose ``sitecustomize`` makes those packages unimportable
(``sys.modules[name] = None``: ``import`` raises ImportError and ``find_spec`` finds nothing, as
when they are not installed), so the real import paths of the engine are exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xtts_core._extras import LANGUAGE_EXTRAS, require_language
from xtts_core.errors import MissingExtraError

#: What a slim install lacks: spaCy and every language's own packages.
BLOCKED = ("spacy", *(module for _, modules in LANGUAGE_EXTRAS.values() for module in modules))

SITECUSTOMIZE = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None
"""


def run_slim(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where the :data:`BLOCKED` packages cannot be imported."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_the_blocker_blocks(tmp_path: Path) -> None:
    result = run_slim(
        f"""
        import importlib.util
        for name in {BLOCKED!r}:
            assert importlib.util.find_spec(name) is None, name
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                raise SystemExit(name + " imported")
        print("blocked")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "blocked"


def test_english_synthesises_and_cjk_names_its_extra(tmp_path: Path, tiny_dir: Path) -> None:
    result = run_slim(
        f"""
        import json, sys
        from xtts_core.engine import XttsEngine
        from xtts_core.errors import MissingExtraError
        from xtts_core.generate import SamplingParams

        engine = XttsEngine.from_pretrained({str(tiny_dir)!r}, device="cpu")
        voice = engine.speaker("Random Speaker")
        params = SamplingParams(seed=0, min_new_codes=4, max_new_codes=4)
        out = engine.synthesize("Hello world, it is 3 o'clock.", "en", voice, params)
        long_text = "The quick brown fox jumps over the lazy dog. " * 12
        report = {{
            "samples": int(out.wav.size),
            "codes": len(out.codes),
            "segments": engine.segments(long_text, "en"),
            "loaded": sorted(n for n in {BLOCKED!r} if sys.modules.get(n) is not None),
        }}
        for language, text in (("ja", "こんにちは"), ("zh-cn", "你好"), ("ko", "안녕하세요")):
            try:
                engine.segments(text, language)
            except MissingExtraError as exc:
                report[language] = str(exc)
        print(json.dumps(report))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == 4
    assert report["samples"] > 0
    assert report["loaded"] == []
    segments = report["segments"]
    assert len(segments) == 3  # 12 sentences of 44 characters, packed into 250
    assert all(s.endswith("dog.") and len(s) <= 250 for s in segments)
    for language, extra, missing in (("ja", "ja", "cutlet"), ("zh-cn", "zh", "pypinyin"),
                                     ("ko", "ko", "ko_speech_tools")):  # fmt: skip
        message = report[language]
        assert "\n" not in message
        assert f"pip install 'xtts-core[{extra}]'" in message
        assert f"missing: {missing}" in message


def test_the_text_front_end_imports_without_the_language_packages(tmp_path: Path) -> None:
    result = run_slim(
        """
        from xtts_core.text.normalize import normalize
        from xtts_core.text.chinese import normalize_numbers
        print(normalize("Dr. Smith paid $5.", "en"), "|", normalize_numbers("15个"))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "doctor smith paid five dollars. | 十五个"


@pytest.mark.parametrize("language", ["en", "de", "hi", "xx"])
def test_languages_without_a_package_always_pass(language: str) -> None:
    require_language(language)  # no exception


def test_a_missing_language_package_raises_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypinyin", None)
    with pytest.raises(MissingExtraError) as info:
        require_language("zh")
    assert str(info.value) == (
        "Chinese text needs the zh extra (missing: pypinyin); "
        "install it with: pip install 'xtts-core[zh]'"
    )
    assert isinstance(info.value, ImportError)
