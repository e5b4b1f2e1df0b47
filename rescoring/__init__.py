"""Second pass: RescoreBERT n-best reranking (corpus, model, training, export, runtime)."""
