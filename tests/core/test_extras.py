"""The torch-free core and the ``inference`` extra guard; the error hierarchy."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from xtts_core import errors
from xtts_core._extras import INFERENCE_MODULES, require_inference
from xtts_core.errors import MissingExtraError, XttsError

INSTALL_HINT = "pip install 'xtts-core[inference]'"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_require_inference_passes_once_every_module_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[str] = []

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(name)
        return object()  # found

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert require_inference("anything") is None
    assert looked_up == list(INFERENCE_MODULES)


@pytest.mark.parametrize("missing", INFERENCE_MODULES)
def test_require_inference_names_the_extra(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError) as info:
        require_inference("xtts_core.engine")
    message = str(info.value)
    assert INSTALL_HINT in message
    assert f"missing: {missing}" in message
    assert message.startswith("xtts_core.engine needs the inference extra")
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, XttsError)


def test_core_imports_do_not_pull_torch() -> None:
    result = run_python(
        """
        import sys
        import xtts_core, xtts_core.config, xtts_core.errors, xtts_core._extras
        import xtts_core.text, xtts_core.text.vocab
        heavy = sorted(m for m in ("torch", "numpy", "tokenizers", "soundfile") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "heavy: []"


@pytest.mark.parametrize(
    "module",
    [
        "xtts_core.engine",
        "xtts_core.loader",
        "xtts_core.checkpoint",
        "xtts_core.voice",
        "xtts_core.text.tokenizer",
    ],
)
def test_model_modules_without_torch_name_the_extra(module: str) -> None:
    """A real missing torch: ``sys.modules['torch'] = None`` makes it unimportable."""
    result = run_python(
        f"""
        import sys
        sys.modules["torch"] = None
        try:
            import {module}
        except ImportError as exc:
            print(type(exc).__name__, "|", exc)
        else:
            print("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    name, _, message = result.stdout.strip().partition(" | ")
    assert name == "MissingExtraError"
    assert "missing: torch" in message
    assert INSTALL_HINT in message


def test_every_error_is_an_xtts_error() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 10
    assert all(issubclass(cls, XttsError) for cls in classes)
    # callers may catch the builtin kinds they already expect
    assert issubclass(errors.TextError, ValueError)
    assert issubclass(errors.AudioError, ValueError)
    assert issubclass(errors.ParameterError, ValueError)
    assert issubclass(errors.DeviceError, RuntimeError)
    assert issubclass(errors.UnsafeCheckpointError, errors.CheckpointError)
    assert issubclass(errors.UnsupportedLanguageError, errors.TextError)
    assert issubclass(errors.TextTooLongError, errors.TextError)
