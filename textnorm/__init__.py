"""Text normalization shared by the speech and language sides (imports no project package).

`normalize`: the WER / reading normalizer; `strip_accents`; `numbers`: integers as spoken
English and Spanish words.
"""

from textnorm.normalize import SUPPORTED, normalize, strip_accents

__all__ = ["SUPPORTED", "normalize", "strip_accents"]
