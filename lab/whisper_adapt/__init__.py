"""Domain adaptation of Whisper base to the store's words (issue 13, item 3).

Lab code, not installed: `python -m lab.whisper_adapt {data,train,export,evaluate}` from the
repository root. Synthesizes store queries with training voices only (voices.py), augments them
(augment.py), precomputes the frozen encoder's outputs once (data.py), trains a LoRA on the
decoder (train.py) and writes the adapter the runtime merges at assembly (asr/adapter.py).
"""
