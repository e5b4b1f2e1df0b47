"""The environment variables of the runtime, all of them, and the assistant's reader of its own.

| variable | default | read by |
| --- | --- | --- |
| RETAIL_ASSISTANT_HOME | ~/.cache/retail-assistant | asr.models.cache_home (home() here) |
| RETAIL_ASSISTANT_ASR_MODEL | <home>/whisper-base | asr.models.default_model_dir |
| RETAIL_ASSISTANT_RESCORER | rescoring/models/rescorer ("none": off) | rescoring.runtime.default_model_dir |
| RETAIL_ASSISTANT_NLU_MODEL | nlu/models/student | nlu.runtime.default_model_dir |
| RETAIL_ASSISTANT_DB | sqlite:///<home>/inventory.sqlite | database_url() here |

Each variable is read in one place. The stage packages cannot import this one (asr and nlu
import no other package of the project, tests/test_layout.py), so each reads the variable of
its own model in the function that gives its default directory; this module reads the
assistant's own (the database) and takes the cache home from asr.models rather than reading it
a second time. tests/assistant/test_env.py holds every `os.environ` of the runtime to this table.
"""

from __future__ import annotations

import os
from pathlib import Path

# variable -> the module that reads it (the only one)
VARIABLES: dict[str, str] = {
    "RETAIL_ASSISTANT_HOME": "asr.models",
    "RETAIL_ASSISTANT_ASR_MODEL": "asr.models",
    "RETAIL_ASSISTANT_RESCORER": "rescoring.runtime",
    "RETAIL_ASSISTANT_NLU_MODEL": "nlu.runtime",
    "RETAIL_ASSISTANT_DB": "assistant.env",
}


def home() -> Path:
    """Where set-up puts models and the inventory: `$RETAIL_ASSISTANT_HOME` or
    ~/.cache/retail-assistant, outside the source tree."""
    from asr.models import cache_home

    return cache_home()


def database_url() -> str:
    """SQLAlchemy URL of the inventory database: `$RETAIL_ASSISTANT_DB` or a SQLite file."""
    return os.environ.get("RETAIL_ASSISTANT_DB", f"sqlite:///{home() / 'inventory.sqlite'}")
