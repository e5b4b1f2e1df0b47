"""Synthetic labelled EN/ES retail corpus: templates x catalog -> ASR-style queries with spans.

`python -m lab.nlu.corpus build --catalog build/catalog.jsonl --out build/corpus --seed 13`
writes train/dev/test JSONL, an unlabelled pool for distillation and statistics
(docs/corpus.md describes the shapes). Nothing here imports `assistant`.
"""

from lab.nlu.corpus.generate import CorpusConfig, build_corpus

__all__ = ["CorpusConfig", "build_corpus"]
