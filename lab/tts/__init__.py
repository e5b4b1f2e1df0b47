"""lab/tts."""
