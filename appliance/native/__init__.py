"""Compiled DSP (Cython sources live in the repository's native/ folder)."""

try:
    from .conversation import analyse_conversation
    from .vad import (BAND_EDGES_HZ, CLS_MUSIC, CLS_SILENCE, CLS_SPEECH, CLS_TONE, CallDetector,
                      PartyDetector, Segmenter)
    from .vad import _leak_gains as leak_gains
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "the compiled DSP modules are missing: reinstall the package with "
        "`pip install -e .` (it builds native/*.pyx)"
    ) from exc

__all__ = ["BAND_EDGES_HZ", "CLS_MUSIC", "CLS_SILENCE", "CLS_SPEECH", "CLS_TONE", "CallDetector",
           "PartyDetector", "Segmenter", "analyse_conversation", "leak_gains"]
