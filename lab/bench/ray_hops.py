"""Where a final's time goes on the Ray path, hop by hop, next to the same final in-process.

    python -m lab.bench.ray_hops [--clips 6] [--repeats 3] [--out docs/ray_hops.json \\
        --markdown docs/ray_hops.md]

Loads the single-process pipeline here (`load_pipeline`, what `assistant serve` runs) and
deploys the Ray Serve application (`assistant serve --engine ray`, a local Ray with this
machine's CPUs), then, for each fixture clip and repeat, in turn on the same clip:

  local      Pipeline.finals(answer=False) + the answer with the batch's parses: the stage
             times of the single-process server's final (no websocket)
  ray        RayPipeline.finals + its answerer, as a front end runs them: the first-pass call
             timed from this process (round trip) and against the time the first pass took
             in its replica (compute); round trip - compute = queueing, routing,
             (de)serialization and the replica's thread hand-offs; the later stages here
             (the local pipeline's, shared)
  timed      the same first-pass call once more, split by the replica's own clock: there,
             inside (Serve's batch queue, thread hand-offs), compute, back
  ping       an empty call, and one carrying the clip's audio (FinalRequest), to the
             deployment: the bare cost of a handle call and of moving the audio

and, once, the thread count and OMP/MKL variables of each replica process and the CPU time
Ray's own processes (GCS, raylet, the Serve controller, idle replicas) take while idle.

Each final starts `--settle-s` after the one before: ONNX Runtime's intra-op threads spin on
for a while after a run, and the rescorer and student run in this process for both engines,
so without the pause one engine's spin would delay the other's next call.

Wall times on a shared machine are inflated by whatever else runs; compare as ratios of runs
interleaved here, and read the load average in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

from lab.bench.first_pass import FIXTURES, load_fixtures
from lab.report import machine_info, write_report

log = logging.getLogger(__name__)
DEPLOYMENTS = ("FirstPass",)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def local_final(pipeline, request) -> dict[str, float]:
    """The in-process final: stage times (ms) and the total wall time."""
    started = time.perf_counter()
    (result,) = pipeline.finals([request], answer=False)
    t = time.perf_counter()
    _answer(pipeline.answerer, result, request.store)
    out = {k: result.timings_ms[k] for k in ("asr", "rescore", "nlu")}
    out["answer"] = _ms(t)
    out["total"] = _ms(started)
    return out


def _answer(answerer, result, store: str) -> None:
    """The server's answer stage's call: the answer from the batch's parses."""
    if answerer is not None and result.nlu is not None:
        nlus = {} if result.nlus is None else {"nlus": list(result.nlus)}
        answerer.answer(result.nlu, store, nbest=result.nbest, **nlus)


class HopTimer:
    """Wraps the RayPipeline's caller: each deployment call's round trip, by method name."""

    def __init__(self, call) -> None:
        self.call, self.hops = call, []

    def __call__(self, method, *args, **kwargs):
        started = time.perf_counter()
        reply = self.call(method, *args, **kwargs)
        self.hops.append((_name(method), _ms(started), reply))
        return reply


def _name(method) -> str:
    opts = getattr(method, "handle_options", None)
    return f"{getattr(method, 'deployment_name', '?')}.{getattr(opts, 'method_name', '?')}"


def ray_final(pipeline, request) -> dict:
    """The front end's final over the deployment: every call's round trip against the time
    the stage took in its replica (compute), and the stages run here."""
    timer = HopTimer(pipeline.call)
    pipeline.call = timer
    try:
        started = time.perf_counter()
        (result,) = pipeline.finals([request], answer=False)
        t = time.perf_counter()
        _answer(pipeline.answerer, result, request.store)
        answer_ms = _ms(t)
        total = _ms(started)
    finally:
        pipeline.call = timer.call
    hops = [
        {
            "call": name,
            "round_trip_ms": round_trip,
            "compute_ms": reply.timings_ms["asr"],
            "reply_bytes": len(pickle.dumps(reply, protocol=5)),
        }
        for name, round_trip, reply in timer.hops
    ]
    here = {k: result.timings_ms[k] for k in ("rescore", "nlu")}
    return {"total": total, "hops": hops, "round_trips": len(hops), **here, "answer": answer_ms}


def timed_hop(handle, request) -> dict[str, float]:
    """One first-pass call split by the replica's stamps (ms): there (caller -> replica),
    inside (the replica's Serve batch queue and thread hand-off: its time minus the first
    pass's own), compute (the first pass), back (the reply -> the caller)."""
    sent = time.perf_counter()
    result, arrived, left = handle.timed_final.remote(request).result(timeout_s=120)
    received = time.perf_counter()
    compute = result.timings_ms["asr"]
    return {
        "there_ms": (arrived - sent) * 1000.0,
        "inside_ms": (left - arrived) * 1000.0 - compute,
        "compute_ms": compute,
        "back_ms": (received - left) * 1000.0,
    }


def pings(handles: dict, request, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median ms of an empty call and of one carrying `request` (its audio) to each
    deployment: there (caller -> replica method) and the whole round trip."""
    out = {}
    for name, handle in handles.items():
        for label, args in (("empty", ()), ("audio", (request,))):
            there, total = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                arrived = handle.ping.remote(*args).result(timeout_s=30)
                total.append(_ms(started))
                there.append((arrived - started) * 1000.0)
            out[f"{name}.{label}"] = {
                "there_ms": statistics.median(there),
                "round_trip_ms": statistics.median(total),
            }
    return out


def replica_processes(handles: dict) -> dict[str, dict]:
    """Per deployment: its replica's pid, thread count and thread variables."""
    out = {}
    for name, handle in handles.items():
        pid = handle.pid.remote().result(timeout_s=30)
        env = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        status = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        out[name] = {
            "pid": pid,
            "threads": int(status["Threads"]),
            **{k: env.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CT2_NUM_THREADS")},
        }
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ray_idle_cpu(window_s: float = 20.0) -> dict[str, float]:
    """Share of one core each Ray process (by command) uses over `window_s` of idleness."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if "ray" in cmd and int(entry.name) != os.getpid():
            procs[int(entry.name)] = cmd
    before = {}
    for pid in procs:
        with contextlib.suppress(OSError):
            before[pid] = _cpu_seconds(pid)
    time.sleep(window_s)
    share: dict[str, float] = {}
    for pid, cpu in before.items():
        try:
            used = _cpu_seconds(pid) - cpu
        except OSError:
            continue
        words = procs[pid].split()
        key = next((w for w in words if "::" in w or w.startswith("ray::")), None)
        key = key or os.path.basename(words[0]) + (" " + words[1] if len(words) > 1 else "")
        share[key[:60]] = share.get(key[:60], 0.0) + used / window_s
    return dict(sorted(share.items(), key=lambda kv: -kv[1]))


def summarize(rows: list[dict]) -> dict:
    """Medians over the clips and repeats: local stages, Ray hops, Ray - local."""
    med = statistics.median
    local = {k: med(r["local"][k] for r in rows) for k in rows[0]["local"]}
    hops: dict[str, dict[str, list]] = {}
    for r in rows:
        for hop in r["ray"]["hops"]:
            h = hops.setdefault(hop["call"], {"round_trip_ms": [], "compute_ms": []})
            h["round_trip_ms"].append(hop["round_trip_ms"])
            h["compute_ms"].append(hop["compute_ms"])
    here = {k: med(r["ray"][k] for r in rows) for k in ("rescore", "nlu", "answer")}
    split = {k: med(r["timed"][k] for r in rows) for k in rows[0]["timed"]}
    return {
        "local_ms": local,
        "first_pass_split_ms": split,
        "ray_front_end_ms": here,
        "ray_total_ms": med(r["ray"]["total"] for r in rows),
        "ray_minus_local_ms": med(r["ray"]["total"] - r["local"]["total"] for r in rows),
        "ray_over_local": med(r["ray"]["total"] / r["local"]["total"] for r in rows),
        "round_trips": med(r["ray"]["round_trips"] for r in rows),
        "hops": {
            name: {
                "round_trip_ms": med(h["round_trip_ms"]),
                "compute_ms": med(h["compute_ms"]),
                "overhead_ms": med(
                    a - b for a, b in zip(h["round_trip_ms"], h["compute_ms"], strict=True)
                ),
            }
            for name, h in hops.items()
        },
    }


def render(report: dict) -> str:
    """The Markdown of a hop profile: the in-process final, the Ray one, the first-pass call
    split, the pings, Ray's idle CPU."""
    from lab.report import describe_machine, render_table

    s = report["summary"]
    f = lambda v: f"{v:.1f}"  # noqa: E731
    stages = render_table(
        ("final", "asr", "rescore", "nlu", "answer", "total"),
        [
            ("in-process", *(f(s["local_ms"][k]) for k in ("asr", "rescore", "nlu", "answer")),
             f(s["local_ms"]["total"])),
            ("Ray", f(s["hops"]["FirstPass.final"]["round_trip_ms"]),
             *(f(s["ray_front_end_ms"][k]) for k in ("rescore", "nlu", "answer")),
             f(s["ray_total_ms"])),
        ],
        "lrrrrr",
    )  # fmt: skip
    split = render_table(
        ("there", "inside the replica", "first pass", "back"),
        [tuple(f(s["first_pass_split_ms"][k]) for k in ("there_ms", "inside_ms", "compute_ms", "back_ms"))],
        "rrrr",
    )  # fmt: skip
    pings = render_table(
        ("call", "there ms", "round trip ms"),
        [(k, f(v["there_ms"]), f(v["round_trip_ms"])) for k, v in report["pings"].items()],
        "lrr",
    )
    idle = sum(report["ray_idle_cpu_share"].values())
    return (
        f"# A final on the Ray path, hop by hop\n\nCommand: `{report['command']}`\n\n"
        f"Machine: {describe_machine(report['machine'])}, "
        f"{report['load_avg'][1]:.2f} at the end\n\n"
        f"Medians (ms) over {len(report['results'])} finals (fixture clips, each on both paths "
        f"in turn, no websocket); Ray's asr is the first-pass call's round trip. Ray - "
        f"in-process: {s['ray_minus_local_ms']:+.1f} ms (x{s['ray_over_local']:.3f}), "
        f"{s['round_trips']:g} deployment call(s) per final.\n\n{stages}\n"
        f"The first-pass call, split by the replica's clock (`FirstPass.timed_final`):\n\n"
        f"{split}\nHandle calls carrying nothing and the clip's FinalRequest "
        f"({report['request_bytes'] / 1000:.0f} kB pickled):\n\n{pings}\n"
        f"Ray's own processes (GCS, raylet, Serve controller, idle replicas) take "
        f"{idle:.2f} of one core while idle.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=6, help="fixture clips (EN and ES in turn)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=0.5,
        help="pause before each measured final: ONNX Runtime's threads spin on after a run "
        "and delay the next call from this process (measured: ~50 ms on 2 loaded cores)",
    )
    parser.add_argument("--idle-s", type=float, default=20.0, help="window for Ray's idle CPU")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from assistant.engine import EngineConfig
    from assistant.pipeline import FinalRequest, PipelineConfig, load_pipeline
    from assistant.ray_engine import RayEngine, RayPipeline
    from assistant.server import ServerConfig

    rows = load_fixtures(FIXTURES)
    en = [r for r in rows if r["language"] == "en"]
    es = [r for r in rows if r["language"] == "es"]
    clips = [c for pair in zip(en, es, strict=False) for c in pair][: args.clips]
    command = "python -m lab.bench.ray_hops " + " ".join(argv if argv is not None else sys.argv[1:])
    report: dict = {
        "command": command,
        "machine": machine_info(),
        "load_avg": [os.getloadavg()[0]],
    }
    config = PipelineConfig()
    local = load_pipeline(config)
    engine = EngineConfig(engine="ray")
    with RayEngine(engine, ServerConfig(port=0), config, log_to_driver=False) as deployed:
        handles = {name: deployed.handle(name) for name in DEPLOYMENTS}
        remote = RayPipeline(handles["FirstPass"], engine, later=local)
        report["replicas"] = replica_processes(handles)
        report["ray_idle_cpu_share"] = ray_idle_cpu(args.idle_s)
        warm = FinalRequest(clips[0]["audio"], clips[0]["language"], "1")
        local_final(local, warm), ray_final(remote, warm)
        report["pings"] = pings(handles, warm)
        report["request_bytes"] = len(pickle.dumps(warm, protocol=5))
        results = []
        for repeat in range(args.repeats):
            for clip in clips:
                request = FinalRequest(clip["audio"], clip["language"], "1")
                # alternate which engine goes first, so that neither always follows the other
                order = ("local", "ray") if repeat % 2 == 0 else ("ray", "local")
                row = {"file": clip["file"], "repeat": repeat}
                time.sleep(args.settle_s)
                row["timed"] = timed_hop(handles["FirstPass"], request)
                for which in order:
                    time.sleep(args.settle_s)
                    row[which] = (
                        local_final(local, request)
                        if which == "local"
                        else ray_final(remote, request)
                    )
                results.append(row)
                log.info(
                    "%s: local %.0f ms, ray %.0f ms (%d calls)",
                    clip["file"],
                    row["local"]["total"],
                    row["ray"]["total"],
                    row["ray"]["round_trips"],
                )
        report["results"] = results
        report["summary"] = summarize(results)
    report["load_avg"].append(os.getloadavg()[0])
    print(write_report(report, render, args.out, args.markdown))
    print(json.dumps({k: report[k] for k in ("replicas", "ray_idle_cpu_share")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
