"""One-shot GPU suite (issue 17): every first-pass and end-to-end figure of a lent GPU in one
run and one JSON, planned to fit a time budget.

    python -m lab.bench.gpu_suite --device cuda --dtypes float16 bfloat16 \
        --torch-model /tmp/gpu_suite/model --out gpu_suite.json           # on the GPU machine
    python -m lab.bench.gpu_suite --dry-run --device cpu --out suite.json  # CI: tiny model, < 1 min

Sections, in the order they run (the ones the targets read come first, so that a short
budget drops the others): with the first dtype that loads, `single` (batch-1 latency over the
fixtures, lab.bench.first_pass.bench_single), `pipeline` (end of speech -> final: the whole
`Pipeline.finals` call the server makes after a query ends, first pass through the
continuous decoder as `assistant serve` runs it on CUDA, then the rescorer, the NLU
student and the answer; once with the rescorer and student in PyTorch on the device
(lab.bench.torch_stages) and once in ONNX Runtime on the CPU), `streams` (1/16/64
concurrent streams, first pass only, static and continuous batching:
lab.bench.first_pass.simulate_streams), `batched` (one nbest_batch call of B clips:
bench_batched); then `single` and `batched` for every other dtype.

The first pass decodes as the server decodes live finals: n-best 5, no wider-beam retries.
Before each part the plan estimates its seconds from what was measured so far (the first
decode, then batch-1 latency); a part that would end past --budget-s is skipped and listed
under "skipped" with the reason, and a part that fails is listed under "errors": the run
goes on either way. The JSON is rewritten after every part, so a run cut short keeps what it
measured. Targets (issue 17) are read off the rows: "pass", "fail" or "not_measured" (and
why); a dry run or a CPU run never passes or fails one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.bench.first_pass import bench_batched, bench_single, load_fixtures, simulate_streams
from lab.report import machine_info, percentiles, render_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sizes:
    """How much one run measures.

    limit: fixtures used (0: all 28); batch_sizes: clips per nbest_batch call; repeats:
    timed calls per batch size (after one warm-up at that size); streams: concurrent stream
    counts; stream_s: simulated seconds of speech per stream count; clip_s: clips cut to
    this many seconds in the streams section (0: whole; the dry run's short simulation needs
    short clips to have any finals); max_new_tokens: decoder token budget (None: the
    transcriber's default); batch_wait_ms / max_batch: the static batcher's settings.
    """

    limit: int = 0
    batch_sizes: tuple[int, ...] = (1, 4, 16, 64)
    repeats: int = 2
    streams: tuple[int, ...] = (1, 16, 64)
    stream_s: float = 12.0
    clip_s: float = 0.0
    max_new_tokens: int | None = None
    batch_wait_ms: float = 5.0
    max_batch: int = 64


FULL = Sizes()
DRY = Sizes(
    limit=4,
    batch_sizes=(1, 2),
    repeats=1,
    streams=(2, 4),
    stream_s=3.0,
    clip_s=0.5,
    max_new_tokens=12,
    max_batch=8,
)
BATCHING = ("continuous", "static")
NBEST = 5
QUERY_S = (2.5, 3.5)  # "a 3-second query": fixtures of this length, reported beside all


@dataclass(frozen=True)
class Target:
    """One of issue 17's targets and the row and field that measure it."""

    name: str
    text: str
    limit_ms: float
    section: str
    match: dict  # fields the measuring row must have
    field: str
    scope: str


TARGETS = (
    Target(
        "query_p50",
        "a 3-second query answered p50 <= 100 ms after end of speech (first pass included)",
        100.0,
        "pipeline",
        {"later_stages": "torch"},
        "end_of_speech_to_final_p50_ms",
        "Pipeline.finals at batch 1 over the fixtures (mean 2.8 s): first pass, rescorer, "
        "student and answer; no websocket, no endpointing silence",
    ),
    *(
        Target(
            f"streams_64_p95_{mode}",
            f"64 concurrent streams with p95 <= 400 ms ({mode} batching)",
            400.0,
            "streams",
            {"streams": 64, "batching": mode},
            "final_p95_ms",
            "first pass only (simulate_streams): end of speech -> n-best",
        )
        for mode in BATCHING
    ),
)


class Budget:
    """Seconds left of the run's budget; parts that would not fit are recorded as skipped."""

    def __init__(self, seconds: float, skipped: list[dict]) -> None:
        self.seconds, self.skipped = seconds, skipped
        self.started = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.started)

    def allows(self, part: str, estimate_s: float) -> bool:
        """Whether `part` (estimated `estimate_s` seconds) fits; if not, it is skipped."""
        if estimate_s <= self.left():
            return True
        reason = (
            f"needs about {estimate_s:.0f} s by estimate; {max(0.0, self.left()):.0f} s of "
            f"the {self.seconds:.0f} s budget left"
        )
        self.skipped.append({"section": part, "reason": reason})
        log.warning("skipped %s: %s", part, reason)
        return False


class Suite:
    """One run: the report, the budget, and the part runner that keeps going on errors."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes, argv: list[str]) -> None:
        self.args, self.sizes = args, sizes
        self.report: dict = {
            "suite": "issue 17 one-shot GPU suite",
            "command": "python -m lab.bench.gpu_suite " + " ".join(argv),
            "dry_run": args.dry_run,
            "device": args.device,
            "dtypes": args.dtypes,
            "budget_s": args.budget_s,
            "sizes": asdict(sizes),
            "first_pass": {"nbest": NBEST, "widen_beam": False, "backend": "torch"},
            "machine": machine_info(),
            "versions": versions(),
            "single": [],
            "batched": [],
            "streams": [],
            "pipeline": [],
            "skipped": [],
            "errors": [],
            "complete": False,
        }
        self.budget = Budget(args.budget_s, self.report["skipped"])
        self.per_clip_s = 1.0  # seconds per batch-1 decode: the planner's unit, updated
        self.first_done = False  # pipeline and streams ran (with the first dtype that loaded)

    def part(self, name: str, estimate_s: float, fn, *args):
        """Run one part if it fits the budget; record its failure instead of raising."""
        if not self.budget.allows(name, estimate_s):
            return None
        started = time.perf_counter()
        try:
            return fn(*args)
        except Exception as error:  # one broken part must not cost the rest of the lease
            log.exception("%s failed", name)
            self.report["errors"].append({"section": name, "error": repr(error)})
            return None
        finally:
            log.info(
                "%s: %.1f s (estimate %.1f s)", name, time.perf_counter() - started, estimate_s
            )
            self.write()

    def write(self) -> None:
        self.report["wall_s"] = round(self.budget.seconds - self.budget.left(), 1)
        self.report["targets"] = evaluate_targets(self.report)
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(finite(self.report), indent=1, ensure_ascii=False)
        self.args.out.write_text(text + "\n")


def versions() -> dict[str, str]:
    """torch / CUDA / transformers / onnxruntime versions and the GPU torch sees."""
    import onnxruntime
    import torch
    import transformers

    out = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": ",".join(onnxruntime.get_available_providers()),
    }
    if torch.cuda.is_available():
        out["torch_gpu"] = torch.cuda.get_device_name(0)
    return out


def finite(value):
    """The report with NaN / infinity as null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def load_whisper(model_dir: Path, device: str, dtype: str, sizes: Sizes):
    """The first pass as the server decodes live finals (n-best 5, no wider-beam retries)."""
    from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig

    extra = {} if sizes.max_new_tokens is None else {"max_new_tokens": sizes.max_new_tokens}
    return TorchTranscriber(
        TorchTranscriberConfig(
            model_dir=model_dir,
            device=device,
            dtype=dtype,
            nbest=NBEST,
            batch_size=sizes.max_batch,
            widen_beam=False,
            **extra,
        )
    )


def pipeline_rows(suite: Suite, transcriber, rows: list[dict], dtype: str) -> None:
    """End of speech -> final, later stages in PyTorch on the device, then in ONNX Runtime on
    the CPU (the second only when the budget allows); each row says where each stage ran."""
    from asr.torch_continuous import ContinuousDecoder
    from assistant.pipeline import PipelineConfig, load_pipeline
    from lab.bench.torch_stages import onnx_parser, onnx_placement, to_torch

    config = PipelineConfig(
        nbest=NBEST, asr_backend="torch", rescore_device="cpu", nlu_device="cpu"
    )
    pipeline = load_pipeline(config, transcriber=transcriber)
    student = onnx_parser(pipeline.parser)
    placed = {
        "rescore": pipeline.reranker and onnx_placement(pipeline.reranker.session),
        "nlu": student and onnx_placement(student.session),
    }
    stages, restore = to_torch(pipeline, suite.args.device, [r["text"] for r in rows])
    asr = {
        "runtime": "torch",
        "device": str(transcriber.device),
        "dtype": str(transcriber.dtype)[6:],
        "batching": "continuous (asr.torch_continuous, as serve runs it on CUDA)",
    }
    answer = {"runtime": "python + SQLite inventory", "device": "cpu"}
    estimate = (len(rows) + 1) * (3 * suite.per_clip_s + 0.3)
    with ContinuousDecoder(transcriber) as decoder:
        live = pipeline.with_final_decoder(decoder)
        for label, where in (
            ("torch", {"asr": asr, **stages, "answer": answer}),
            ("onnxruntime", {"asr": asr, **placed, "answer": answer}),
        ):
            if label == "onnxruntime":
                restore()
            if not suite.budget.allows(f"pipeline/{label}", estimate):
                continue
            row = time_finals(live, rows)
            suite.report["pipeline"].append(
                {"later_stages": label, "dtype": dtype, "where": where, **row}
            )
            suite.write()


def time_finals(pipeline, rows: list[dict]) -> dict:
    """`pipeline.finals` at batch 1 on every fixture, after one warm-up: wall ms p50/p95 (all
    clips and the 2.5-3.5 s ones), each stage's p50 (the final's own timings) and errors."""
    from assistant.pipeline import FinalRequest

    def final(row):
        return pipeline.finals([FinalRequest(row["audio"], row["language"], "1")])[0]

    final(rows[0])
    wall, stages, errors, answered, query = [], {}, Counter(), 0, []
    for row in rows:
        started = time.perf_counter()
        result = final(row)
        ms = 1000 * (time.perf_counter() - started)
        wall.append(ms)
        if QUERY_S[0] <= len(row["audio"]) / 16000 <= QUERY_S[1]:
            query.append(ms)
        for stage, value in result.timings_ms.items():
            stages.setdefault(stage, []).append(value)
        errors.update(str(code) for code, _ in result.errors)
        answered += result.answer is not None
    q, q3 = percentiles(wall), percentiles(query)
    return {
        "finals": len(wall),
        "end_of_speech_to_final_p50_ms": q["p50"],
        "end_of_speech_to_final_p95_ms": q["p95"],
        "queries_2_5_to_3_5_s": len(query),
        "end_of_speech_to_final_p50_ms_2_5_to_3_5_s": q3["p50"],
        "stage_p50_ms": {k: percentiles(v, (50,))["p50"] for k, v in stages.items()},
        "stage_p95_ms": {k: percentiles(v, (95,))["p95"] for k, v in stages.items()},
        "answered": answered,
        "errors": dict(errors),
    }


def stream_rows(suite: Suite, transcriber, rows: list[dict], dtype: str) -> None:
    """simulate_streams at each stream count, both batching modes on the same arrivals.
    Estimate: the simulated time, stretched by how far the last count of that mode fell
    behind (scaled by the stream ratio), plus a tail of decodes."""
    sizes = suite.sizes
    if sizes.clip_s:
        cut = int(sizes.clip_s * 16000)
        rows = [{**r, "audio": r["audio"][:cut]} for r in rows]
    last: dict[str, tuple[int, float]] = {}
    for n in sizes.streams:
        for mode in BATCHING:
            lag = 1.0
            if mode in last:
                prev_n, prev_lag = last[mode]
                lag = max(1.0, prev_lag * n / prev_n)
            estimate = sizes.stream_s * lag + 5 * suite.per_clip_s + 2.0
            sim = suite.part(
                f"streams/{n}/{mode}",
                estimate,
                simulate_streams,
                transcriber,
                rows,
                n,
                sizes.stream_s,
                sizes.batch_wait_ms,
                sizes.max_batch,
                0,
                mode,
            )
            if sim is not None:
                last[mode] = (n, sim["wall_s"] / sizes.stream_s)
                run = str(transcriber.dtype)[6:]
                suite.report["streams"].append({"dtype": dtype, "dtype_run": run, **sim})


def run_dtype(suite: Suite, model_dir: Path, dtype: str, rows: list[dict]) -> None:
    """Every part measured with one dtype (see the module doc for which and in what order)."""
    import torch

    sizes, loaded = suite.sizes, {}

    def load():
        started = time.perf_counter()
        loaded["model"] = load_whisper(model_dir, suite.args.device, dtype, sizes)
        probe = time.perf_counter()
        loaded["model"].nbest(rows[0]["audio"], rows[0]["language"])  # cold: an upper bound
        suite.per_clip_s = time.perf_counter() - probe
        suite.report.setdefault("load_s", {})[dtype] = round(probe - started, 1)
        return loaded["model"]

    estimate = suite.report.get("load_s", {}).get(suite.args.dtypes[0], 30.0) + suite.per_clip_s
    model = suite.part(f"load/{dtype}", estimate, load)
    if model is None:
        return
    run = str(model.dtype)[6:]
    single = suite.part(
        f"single/{dtype}", (len(rows) + 1) * suite.per_clip_s, bench_single, model, rows
    )
    if single is not None:
        suite.per_clip_s = single["latency_p95_ms"] / 1000
        suite.report["single"].append({"dtype": dtype, "dtype_run": run, **single})
    if not suite.first_done:
        suite.first_done = True
        estimate = 20.0 + 2 * (len(rows) + 1) * (3 * suite.per_clip_s + 0.3)
        suite.part("pipeline", estimate, pipeline_rows, suite, model, rows, dtype)
        stream_rows(suite, model, rows, dtype)
    for size in sizes.batch_sizes:
        estimate = (1 + sizes.repeats) * size * suite.per_clip_s
        got = suite.part(
            f"batched/{dtype}/{size}", estimate, bench_batched, model, rows, [size], sizes.repeats
        )
        for row in got or []:
            suite.report["batched"].append({"dtype": dtype, "dtype_run": run, **row})
    del model, loaded["model"]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_targets(report: dict) -> list[dict]:
    """Each target: the measured figure where its row exists, and pass / fail / not_measured
    (with the reason). Only a real (not dry) CUDA run passes or fails a target."""
    out = []
    for target in TARGETS:
        rows = [
            r for r in report[target.section] if all(r.get(k) == v for k, v in target.match.items())
        ]
        measured = rows[0].get(target.field) if rows else None
        entry = {
            "target": target.name,
            "text": target.text,
            "limit_ms": target.limit_ms,
            "measured_ms": measured,
            "scope": target.scope,
        }
        reasons = []
        if report["dry_run"] or report["device"] != "cuda":
            why = "dry run: tiny random-weight Whisper" if report["dry_run"] else "not a GPU run"
            reasons.append(f"{why} (device {report['device']})")
        if rows and rows[0].get("errors"):  # e.g. no database: fast finals, no answers
            reasons.append(f"finals carried errors {rows[0]['errors']}")
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            lost = [
                f"{x['section']}: {x.get('reason') or x.get('error')}"
                for x in report["skipped"] + report["errors"]
                if x["section"].startswith(_parts(target))
            ]
            reasons.append(lost[0] if lost else "no such row in this run's sizes")
        if reasons:
            entry |= {"status": "not_measured", "reason": "; ".join(reasons)}
        else:
            entry["status"] = "pass" if measured <= target.limit_ms else "fail"
        out.append(entry)
    return out


def _parts(target: Target) -> tuple[str, ...]:
    """Prefixes of the part names whose skip or failure leaves `target` unmeasured."""
    if target.section == "pipeline":
        return ("load/", "pipeline")
    m = target.match
    return ("load/", f"streams/{m['streams']}/{m['batching']}")


def summary(report: dict) -> str:
    """Markdown tables of the targets and the skipped parts (the JSON holds every row)."""
    targets = render_table(
        ("target", "measured ms", "limit ms", "status"),
        (
            (
                t["text"],
                "" if t["measured_ms"] is None else f"{t['measured_ms']:.0f}",
                f"{t['limit_ms']:.0f}",
                t["status"] + (f" ({t['reason']})" if "reason" in t else ""),
            )
            for t in report["targets"]
        ),
        "lrrl",
    )
    skipped = "".join(f"- skipped {s['section']}: {s['reason']}\n" for s in report["skipped"])
    errors = "".join(f"- error in {e['section']}: {e['error']}\n" for e in report["errors"])
    return f"{targets}\n{skipped}{errors}wall {report['wall_s']} s of {report['budget_s']} s\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--dtypes", nargs="+", choices=("float16", "bfloat16", "float32"),
        default=["float16", "bfloat16"],
        help="first-pass dtypes; the first that loads also runs the pipeline and streams (on the "
        "CPU the backend runs float32 whatever is asked: dtype_run says so)",
    )  # fmt: skip
    parser.add_argument("--torch-model", type=Path, help="converted weights (asr.torch_convert)")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="plan within this")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny random-weight Whisper and tiny sizes (CI: the whole script in < 1 min)",
    )
    args = parser.parse_args(argv)
    if args.dry_run == (args.torch_model is not None):
        parser.error("give --torch-model DIR, or --dry-run (which builds its own tiny model)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    if args.dry_run and args.device == "cpu":
        torch.set_num_threads(1)  # tiny models: hand-offs between threads cost more than they save
    sizes = DRY if args.dry_run else FULL
    suite = Suite(args, sizes, argv)
    rows = load_fixtures()[: sizes.limit or None]
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as scratch:
        model_dir = args.torch_model
        if args.dry_run:
            from lab.tiny_whisper import write_tiny_whisper_dir

            # Whisper's 448 decoder positions: the pipeline's catalog prompts are long
            model_dir = write_tiny_whisper_dir(Path(scratch) / "tiny-whisper", max_positions=448)
        for dtype in args.dtypes:
            run_dtype(suite, model_dir, dtype, rows)
    suite.report["complete"] = True
    suite.report["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    suite.write()
    print(summary(suite.report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
