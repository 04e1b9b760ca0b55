"""Loudspeaker audio (alerts/audio.py): espeak-ng when installed, a clean None when not.

The real-synthesis tests skip when espeak-ng is not on PATH (``apt-get install espeak-ng``);
the error paths run everywhere against small stand-in scripts named ``espeak-ng``.
"""

from __future__ import annotations

import shutil
import stat
import sys
import wave
from pathlib import Path

import pytest

from alerts.audio import VOICES, AudioError, espeak_available, synthesize

RED_BROADCAST = "红色预警：夏河村尾矿库浸润线埋深低于控制值，请立即转移到安全地带。"
needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def _stand_in(directory: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put an executable ``espeak-ng`` shell script first (and alone) on PATH."""
    exe = directory / "espeak-ng"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(directory))
    return exe


def _wav_seconds(path: Path) -> float:
    header = path.read_bytes()[:12]
    assert header[:4] == b"RIFF" and header[8:12] == b"WAVE", header
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() >= 1 and wav.getframerate() > 0
        return wav.getnframes() / wav.getframerate()


@needs_espeak
@pytest.mark.parametrize(
    ("language", "text"),
    [("zh-CN", RED_BROADCAST), ("en", "Red warning: evacuate Xiahe village now.")],
)
def test_synthesize_writes_a_wave_file(tmp_path: Path, language: str, text: str):
    out = tmp_path / "broadcast" / f"{language}.wav"

    assert synthesize(text, out, language=language) == out

    assert _wav_seconds(out) > 1.0  # a sentence, not a click
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


@needs_espeak
def test_slower_speech_is_longer(tmp_path: Path):
    normal = synthesize(RED_BROADCAST, tmp_path / "normal.wav")
    slow = synthesize(RED_BROADCAST, tmp_path / "slow.wav", speed_wpm=100)

    assert normal is not None and slow is not None
    assert _wav_seconds(slow) > _wav_seconds(normal)


def test_without_espeak_there_is_no_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert not espeak_available()
    assert synthesize(RED_BROADCAST, tmp_path / "a.wav") is None
    assert not (tmp_path / "a.wav").exists()


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("   ", {}, "empty text"),
        (RED_BROADCAST, {"language": "fr"}, "no espeak-ng voice"),
        (RED_BROADCAST, {"speed_wpm": 20}, "speed_wpm"),
    ],
)
def test_bad_arguments_are_refused_even_without_espeak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, kwargs: dict, message: str
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(ValueError, match=message):
        synthesize(text, tmp_path / "a.wav", **kwargs)


def test_voices_are_the_espeak_ng_names():
    assert VOICES == {"zh-CN": "cmn", "en": "en"}


def test_a_failing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _stand_in(tmp_path, "echo \"Failed to read voice 'cmn'\" >&2\nexit 1\n", monkeypatch)

    with pytest.raises(AudioError, match=r"exited with 1: Failed to read voice 'cmn'"):
        synthesize(RED_BROADCAST, tmp_path / "out" / "a.wav")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_hanging_espeak_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _stand_in(tmp_path, f"exec {shutil.which('sleep')} 30\n", monkeypatch)

    with pytest.raises(AudioError, match=r"did not finish within 0\.5 s"):
        synthesize(RED_BROADCAST, tmp_path / "a.wav", timeout_s=0.5)
    assert not (tmp_path / "a.wav").exists()


def test_no_audio_written_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # succeeds, writes nothing
    _stand_in(tmp_path, f"{shutil.which('cat')} >/dev/null\nexit 0\n", monkeypatch)

    with pytest.raises(AudioError, match="wrote no audio"):
        synthesize(RED_BROADCAST, tmp_path / "a.wav")


def test_text_goes_on_stdin_and_the_file_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the stand-in records its arguments and stdin, and writes a real 1 s WAV where -w says
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = f"""
printf '%s\\n' "$@" > {tmp_path}/args
{shutil.which("cat")} > {tmp_path}/stdin
while [ "$1" != "-w" ]; do shift; done
exec {sys.executable} -c 'import sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(22050)
w.writeframes(bytes(44100)); w.close()' "$2"
"""
    _stand_in(bin_dir, script, monkeypatch)
    text = "-立即转移"  # a leading dash must not become an option

    out = synthesize(text, tmp_path / "a.wav", language="zh-CN", speed_wpm=140)

    assert out == tmp_path / "a.wav" and _wav_seconds(out) == pytest.approx(1.0)
    args = (tmp_path / "args").read_text().split("\n")
    assert args[:4] == ["-v", "cmn", "-b", "1"] and "--stdin" in args and text not in args
    assert args[args.index("-s") + 1] == "140"
    assert (tmp_path / "stdin").read_text("utf-8") == text
