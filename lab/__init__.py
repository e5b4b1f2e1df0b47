"""Lab code: corpus generation, TTS, training, export, evaluation and benchmarks.

Not installed (`pip install .` ships only the runtime packages); run from the repository
root as `python -m lab....`. The lab may import anything; the runtime never imports the lab.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
