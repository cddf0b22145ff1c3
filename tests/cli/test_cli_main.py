"""The ``xtts`` entry point: help everywhere, version, ``python -m``, defaults from env and file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_runner import assert_one_line_error, child_env, run, stderr

COMMANDS = [
    [], ["synth"], ["batch"], ["bench"], ["model"], ["model", "make-test-checkpoint"],
    ["model", "check"], ["model", "download"], ["voice"], ["voice", "clone"], ["voice", "list"],
    ["voice", "info"], ["text"], ["text", "normalize"], ["text", "split"], ["text", "tokenize"],
]  # fmt: skip


def test_help_everywhere_without_torch(tmp_path: Path) -> None:
    """``--help`` of every command through the console script's entry function, in one child
    process (the script only calls it), which must never import torch for help."""
    code = f"""
import contextlib, io, sys
from xtts_cli.main import main
for command in {COMMANDS!r}:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*command, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, (command, exc.code)
    assert "Usage: xtts" in out.getvalue(), (command, out.getvalue())
assert "torch" not in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, env=child_env(tmp_path),
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_console_script_help(tmp_path: Path) -> None:
    result = run("synth", "--help", cwd=tmp_path)
    assert result.returncode == 0, stderr(result)
    assert "--stream-first-chunk-size" in result.stdout.decode()


def test_version_and_python_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xtts_cli", "--version"], cwd=tmp_path, capture_output=True,
        env=child_env(tmp_path), check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.decode().strip() == "xtts 0.1.0"


def test_model_dir_from_env_and_config_file(tiny: Path, tmp_path: Path) -> None:
    def tokenize(*args: str | Path, env: dict[str, str] | None = None) -> str:
        result = run(*args, "text", "tokenize", "Hi.", cwd=tmp_path, env=env)
        assert result.returncode == 0, stderr(result)
        return result.stdout.decode().splitlines()[-1]

    assert tokenize(env={"XTTS_MODEL_DIR": str(tiny)}).endswith(" tokens")
    config = tmp_path / ".config" / "xtts" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"model-dir = {str(tiny)!r}\n")
    assert tokenize().endswith(" tokens")
    config.write_text("modle_dir = 'x'\n")
    assert_one_line_error(run("voice", "list", cwd=tmp_path), 2, "unknown option(s) modle_dir")
    other = tmp_path / "other.toml"
    other.write_text(f"model_dir = {str(tiny)!r}\nlanguage = 'xx'\n")
    result = run("--cli-config", other, "text", "tokenize", "Hi.", cwd=tmp_path)
    assert_one_line_error(result, 2, "'xx'")  # the file's language reached the command
    other.write_text("model_dir = [\n")
    assert_one_line_error(
        run("--cli-config", other, "voice", "list", cwd=tmp_path), 2, "not valid TOML"
    )


def test_public_api() -> None:
    """The package exports its entry point, its app, its exceptions and its version; nothing else."""
    import xtts_cli
    from xtts_cli.main import main

    assert sorted(xtts_cli.__all__) == ["CliError", "UsageError", "__version__", "app", "main"]
    assert xtts_cli.main is main
    assert issubclass(xtts_cli.UsageError, xtts_cli.CliError)
    assert xtts_cli.__version__ == "0.1.0"
