"""The one-shot GPU suite (lab.bench.gpu_suite) runs whole on the CPU in a dry run, so that it
cannot fail on a lent GPU for a typo: a tiny random-weight Whisper, the committed rescorer
and student (in PyTorch, weights read from their ONNX files), the real pipeline and answers.
Figures are not asserted (shared CI cores); structure, placement and parity are. The
weights' carrier (lab.bench.gpu_parts) is checked byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("single", "batched", "streams", "pipeline")
STATUSES = {"pass", "fail", "not_measured"}


def run_suite(out: Path, *flags: str) -> dict:
    """`python -m lab.bench.gpu_suite --dry-run --device cpu` -> its JSON (strict: no NaN)."""
    command = [sys.executable, "-m", "lab.bench.gpu_suite", "--dry-run", "--device", "cpu"]
    proc = subprocess.run(
        [*command, "--out", str(out), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| target |" in proc.stdout  # the printed summary

    def no_nan(token):
        raise AssertionError(f"{token} in the report: JSON has no such number")

    return json.loads(out.read_text(), parse_constant=no_nan)


def ran_or_skipped(report: dict, section: str) -> bool:
    """Rows in the section, or a skip of it (or of a model load) with a reason."""
    reasons = [
        s["reason"]
        for s in report["skipped"]
        if s["section"].startswith((section, "load/")) and s["reason"]
    ]
    return bool(report[section]) or bool(reasons)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    return run_suite(tmp_path_factory.mktemp("suite") / "suite.json")


def test_dry_run_runs_every_section(report):
    assert report["complete"] and report["dry_run"] and report["device"] == "cpu"
    assert "--dry-run" in report["command"] and report["budget_s"] == 480
    assert {"cpu", "cores", "memory_gb", "gpu"} <= report["machine"].keys()
    assert {"torch", "transformers", "onnxruntime"} <= report["versions"].keys()
    assert report["errors"] == []
    for section in SECTIONS:
        assert ran_or_skipped(report, section), section
    assert report["skipped"] == []  # a dry run fits its budget: every part ran
    # every dtype asked: batch 1 and each batch size (the CPU runs them in float32)
    assert {(r["dtype"], r["dtype_run"]) for r in report["single"]} == {
        ("float16", "float32"),
        ("bfloat16", "float32"),
    }
    sizes = report["sizes"]
    assert len(report["batched"]) == 2 * len(sizes["batch_sizes"])
    for row in report["single"]:
        assert row["clips"] == sizes["limit"] and row["latency_p50_ms"] > 0
    # streams: each count, both batching modes, on the same arrivals
    got = {(r["streams"], r["batching"]) for r in report["streams"]}
    assert got == {(n, m) for n in sizes["streams"] for m in ("static", "continuous")}
    for n in sizes["streams"]:
        static, continuous = (
            next(r for r in report["streams"] if r["streams"] == n and r["batching"] == m)
            for m in ("static", "continuous")
        )
        assert static["finals"] == continuous["finals"] >= 1


def test_pipeline_says_where_each_stage_ran(report):
    rows = {r["later_stages"]: r for r in report["pipeline"]}
    assert set(rows) == {"torch", "onnxruntime"}
    for row in rows.values():
        assert set(row["where"]) == {"asr", "rescore", "nlu", "answer"}
        assert row["where"]["asr"]["runtime"] == "torch"
        assert row["finals"] == report["sizes"]["limit"] == row["answered"]
        assert row["end_of_speech_to_final_p50_ms"] > 0
        assert {"asr", "rescore", "nlu", "answer"} <= row["stage_p50_ms"].keys()
    for stage in ("rescore", "nlu"):
        assert rows["torch"]["where"][stage]["runtime"] == "torch"
        assert rows["torch"]["where"][stage]["device"] == "cpu"
        assert rows["onnxruntime"]["where"][stage]["runtime"] == "onnxruntime"
    # the weights read back from the int8 ONNX files score as ONNX Runtime does, up to the
    # activation rounding it adds (measured: 0.006 on scores of spread 0.2; same intents)
    rescore = rows["torch"]["where"]["rescore"]["parity_vs_onnxruntime"]
    assert rescore["max_abs_diff"] < 0.1
    nlu = rows["torch"]["where"]["nlu"]["parity_vs_onnxruntime"]
    assert nlu["intent_agreement"] == 1.0 and nlu["tag_agreement"] >= 0.9


def test_targets_are_never_judged_in_a_dry_run(report):
    targets = {t["target"]: t for t in report["targets"]}
    assert set(targets) == {"query_p50", "streams_64_p95_continuous", "streams_64_p95_static"}
    for target in targets.values():
        assert target["status"] == "not_measured" and "dry run" in target["reason"]
        assert target["limit_ms"] in (100.0, 400.0) and target["scope"]
    assert targets["query_p50"]["measured_ms"] > 0  # the figure is kept, not judged


def test_a_budget_too_small_skips_with_reasons(tmp_path):
    report = run_suite(tmp_path / "suite.json", "--budget-s", "0", "--dtypes", "float16")
    assert report["complete"] and report["errors"] == []
    assert [s["section"] for s in report["skipped"]] == ["load/float16"]
    assert "budget" in report["skipped"][0]["reason"]
    for section in SECTIONS:
        assert not report[section] and ran_or_skipped(report, section)
    for target in report["targets"]:
        assert target["status"] == "not_measured" and "load/float16" in target["reason"]


def test_parts_rebuild_the_files_byte_for_byte(tmp_path):
    from lab.bench.gpu_parts import join, split, stash

    src = tmp_path / "model"
    src.mkdir()
    (src / "model.safetensors").write_bytes(bytes(range(256)) * 4000)  # ~1 MiB
    (src / "config.json").write_text("{}")
    extra = tmp_path / "db.gz"
    extra.write_bytes(b"db")
    out = tmp_path / "parts"
    manifest = split(src, out, [extra], 0.25, 0.3, [], 62.0, REPO)
    assert [c["part"] for c in manifest["calls"]] == ["part1", "part2", "part3", "part4"]
    stashed = tmp_path / "stash"
    for call in manifest["calls"]:  # one call each: only that part travels
        carried = tmp_path / "call" / call["part"]
        carried.parent.mkdir(exist_ok=True)
        (out / call["part"]).rename(carried)
        stash(carried.parent, stashed)
        carried.rename(out / call["part"])
    join(stashed, tmp_path / "joined")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "joined" / name).read_bytes() == (src / name).read_bytes()
    assert (tmp_path / "joined" / "db.gz").read_bytes() == b"db"
    (stashed / "model.safetensors.002").write_bytes(b"damaged")
    with pytest.raises(SystemExit, match="sha256"):
        join(stashed, tmp_path / "again")
