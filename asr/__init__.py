"""Speech side: audio decoding, VAD, Whisper n-best first pass, streaming policy, WER."""

from asr.nbest import Hypothesis, NBest

__all__ = ["Hypothesis", "NBest"]
