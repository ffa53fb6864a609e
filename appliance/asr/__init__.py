"""Speech recognition: the model, the recognizer, and the per-call ASR stage."""
