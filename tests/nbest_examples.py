"""Tiny in-memory n-best lists (lab.rescoring.data.NBestExample) for the rescoring tests."""

import numpy as np

from lab.rescoring.data import NBestExample


def nbest_example(asr, errors, id="x", language="en") -> NBestExample:
    """One list: first-pass scores `asr` and word errors `errors` per hypothesis, 4 ref words."""
    return NBestExample(
        id=id,
        reference="r",
        language=language,
        voice="v",
        texts=tuple(str(k) for k in range(len(asr))),
        asr=np.asarray(asr, dtype=np.float32),
        errors=np.asarray(errors, dtype=np.float32),
        ref_words=4,
        row={},
    )
