"""Loudspeaker audio (optional): a text-to-speech WAV per broadcast, made with ``espeak-ng``.

Village loudspeakers (大喇叭) and broadcast gateways play the warning aloud; issue 3 asks for a
zh-CN WAV per broadcast when ``espeak-ng`` is installed (Debian package ``espeak-ng``). Without
it :func:`synthesize` returns None and the broadcast goes out as CAP text only.

The text goes to espeak-ng on stdin (UTF-8), never on the command line: a warning text that
starts with ``-`` cannot be taken for an option, and long texts meet no argv limit. The WAV is
written next to ``out`` and renamed into place, so a gateway never plays a half-written file.

Errors::

    Exception
     └── AudioError      espeak-ng failed, timed out or wrote no audio
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

__all__ = ["ESPEAK", "VOICES", "AudioError", "espeak_available", "synthesize"]

ESPEAK = "espeak-ng"
#: espeak-ng voices by message language: ``cmn`` is Mandarin Chinese (pinyin, Putonghua).
VOICES = {"zh-CN": "cmn", "en": "en"}
_WAV_HEADER_BYTES = 44  # a RIFF/WAVE file with no samples


class AudioError(Exception):
    """espeak-ng was found but did not produce audio (failed, timed out, empty output)."""


def espeak_available() -> bool:
    """True when the ``espeak-ng`` binary is on ``PATH``."""
    return shutil.which(ESPEAK) is not None


def synthesize(
    text: str,
    out: Path,
    *,
    language: str = "zh-CN",
    speed_wpm: int | None = None,
    timeout_s: float = 30.0,
) -> Path | None:
    """Speak ``text`` into the WAV file ``out``; return ``out``, or None without espeak-ng.

    ``language`` is a message language (zh-CN, en; see :data:`VOICES`); ``speed_wpm`` the
    speaking rate in words per minute (espeak-ng's default, 175, when None); ``timeout_s``
    bounds the run, s. Raises ``ValueError`` for an empty text or an unknown language (also when
    espeak-ng is missing) and :class:`AudioError` when espeak-ng fails.
    """
    if language not in VOICES:
        raise ValueError(f"no espeak-ng voice for language {language!r} (have {sorted(VOICES)})")
    if not text.strip():
        raise ValueError("nothing to say: empty text")
    if speed_wpm is not None and not 80 <= speed_wpm <= 450:  # espeak-ng's accepted range
        raise ValueError(f"speed_wpm must be within 80..450, got {speed_wpm}")
    exe = shutil.which(ESPEAK)
    if exe is None:
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    cmd = [exe, "-v", VOICES[language], "-b", "1", "-w", str(part)]  # -b 1: input is UTF-8
    if speed_wpm is not None:
        cmd += ["-s", str(speed_wpm)]
    try:
        try:
            done = subprocess.run(  # a fixed binary; the text goes on stdin
                [*cmd, "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:  # run() has killed it
            raise AudioError(f"espeak-ng did not finish within {timeout_s} s") from exc
        except OSError as exc:
            raise AudioError(f"espeak-ng could not be started: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip()
            raise AudioError(f"espeak-ng exited with {done.returncode}: {stderr or '(no output)'}")
        size = part.stat().st_size if part.exists() else 0
        if size <= _WAV_HEADER_BYTES:
            raise AudioError(
                f"espeak-ng wrote no audio ({size} bytes) for voice {VOICES[language]!r}"
            )
        os.replace(part, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return out
