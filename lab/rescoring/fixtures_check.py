"""Fixed vs broken on the committed audio fixtures: `python -m lab.rescoring.fixtures_check`.

Runs the first pass (8 readings) and the committed rescorer on tests/fixtures/audio, as
`assistant transcribe --json --nbest 8` does, and counts, against tests/fixtures/fixtures.jsonl:
fixed = first pass wrong, an error-free reading in the 8-best, and the rescored `text` is
error-free; broken = first pass error-free and the rescored text is not. Writes
docs/rescoring_fixtures.json.
"""

from __future__ import annotations

import json

from lab import REPO  # noqa: E402
from lab.wer import word_errors

FIXTURES = REPO / "tests" / "fixtures"


def _errors(reference: str, hypothesis: str, language: str) -> int:
    return word_errors(reference, hypothesis, language, accents=False).errors


def main() -> None:
    from asr.audio import decode_audio
    from asr.transcriber import Transcriber
    from assistant.commands.transcribe import load_reranker

    rows = [json.loads(x) for x in (FIXTURES / "fixtures.jsonl").read_text().splitlines() if x]
    transcriber = Transcriber(nbest=8, cpu_threads=2)
    reranker = load_reranker(no_rescore=False)  # as `assistant transcribe` ranks
    if reranker is None:
        raise SystemExit("no rescorer in rescoring/models/rescorer")
    out = []
    for row in rows:
        nbest = transcriber.nbest(decode_audio(str(FIXTURES / row["file"])), row["language"])
        ranked = reranker.rank(nbest)
        first = nbest.first_pass_best.text
        lang = row["language"]
        errs = [_errors(row["text"], h.text, lang) for h in nbest.hypotheses]
        out.append(
            {
                "file": row["file"],
                "reference": row["text"],
                "first_pass_text": first,
                "text": ranked.text,
                "first_pass_errors": _errors(row["text"], first, lang),
                "rescored_errors": _errors(row["text"], ranked.text, lang),
                "oracle_errors": min(errs),
            }
        )
    candidates = [r for r in out if r["first_pass_errors"] > 0 and r["oracle_errors"] == 0]
    summary = {
        "fixtures": len(out),
        "first_pass_wrong_right_reading_in_8best": len(candidates),
        "fixed": sum(r["rescored_errors"] == 0 for r in candidates),
        "broken": sum(r["first_pass_errors"] == 0 and r["rescored_errors"] > 0 for r in out),
        "errors_first_pass": sum(r["first_pass_errors"] for r in out),
        "errors_rescored": sum(r["rescored_errors"] for r in out),
        "machine": "2-core x86-64 CPU shared with other jobs (CTranslate2 int8 first pass, "
        "ONNX rescorer)",
        "rescorer": json.loads((reranker.model_dir / "config.json").read_text()).get("student"),
        "rows": out,
    }
    path = REPO / "docs" / "rescoring_fixtures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
