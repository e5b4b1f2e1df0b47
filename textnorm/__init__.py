"""Text normalization shared by the speech and language sides (imports no project package).

- `normalize`: the WER / reading normalizer (lab.wer, asr.nbest.reading_key);
- `fold`, `strip_accents`, `fold_chars` (textnorm.fold): matching keys for gazetteers,
  aliases and the linker;
- `numbers`: integers as spoken English and Spanish words (the one number-word table).
"""

from textnorm.fold import fold, fold_chars, strip_accents
from textnorm.normalize import SUPPORTED, normalize

__all__ = ["SUPPORTED", "fold", "fold_chars", "normalize", "strip_accents"]
