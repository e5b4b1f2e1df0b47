"""Where the assistant keeps what it assembles at set-up: models and the inventory database.

Everything lives under one cache directory, `$RETAIL_ASSISTANT_HOME` or
`~/.cache/retail-assistant`, outside the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(
        os.environ.get("RETAIL_ASSISTANT_HOME", Path.home() / ".cache" / "retail-assistant")
    )


def whisper_dir() -> Path:
    """Assembled Whisper base (CTranslate2); the logic lives in asr.models (asr never imports us)."""
    from asr.models import default_model_dir

    return default_model_dir()


def database_url() -> str:
    """SQLAlchemy URL of the inventory database: `$RETAIL_ASSISTANT_DB` or a SQLite file."""
    return os.environ.get("RETAIL_ASSISTANT_DB", f"sqlite:///{home() / 'inventory.sqlite'}")
