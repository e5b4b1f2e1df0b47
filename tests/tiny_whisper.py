"""The tiny random-weight Whisper of the tests; it lives in lab/tiny_whisper.py so that the
benchmark dry run (lab.bench.gpu_suite --dry-run) builds the same model."""

from lab.tiny_whisper import (  # noqa: F401 - re-exported for the tests
    EOT,
    SPECIALS,
    VOCAB,
    WORDS,
    tiny_model,
    torch_threads,
    write_tiny_whisper_dir,
)
