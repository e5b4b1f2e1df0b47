"""lab.report: percentiles, the machine description, and Markdown tables rendered from report
JSON (docs/nlu_report.md's tables come from docs/nlu_report.json this way)."""

import argparse
import json
import math
from pathlib import Path

import pytest

from lab import report
from lab.nlu import evaluate

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_percentiles_skip_none_and_round():
    assert report.percentiles([1.0, None, 2.0, 3.0, 4.0, 5.0], ndigits=1) == {
        "p50": 3.0,
        "p95": 4.8,
    }
    assert report.percentiles([5, 1, 3], qs=(50,)) == {"p50": 3.0}
    empty = report.percentiles([], qs=(50, 99.9))
    assert list(empty) == ["p50", "p99.9"] and all(math.isnan(v) for v in empty.values())


def test_machine_info_fields_and_description():
    info = report.machine_info(threads=2, gpu="")
    assert {"cpu", "cores", "memory_gb", "gpu", "load_avg_1m", "python", "threads"} <= set(info)
    line = report.describe_machine(info)
    assert "2 threads used" in line and "no GPU" in line
    assert report.describe_machine("an older report's line") == "an older report's line"


def test_render_table_from_a_small_report():
    small = {
        "speed": {
            "student_onnx_int8": {
                "batch1": {"p50_ms": 1.791, "p95_ms": 2.323, "min_ms": 1.042},
                "batch32": {"queries_per_s": 700.0},
            },
            "baseline": {
                "batch1": {"p50_ms": 0.22, "p95_ms": 0.355},
                "batch32": {"queries_per_s": 4339.2},
            },
        }
    }
    assert evaluate.speed_table(small["speed"]) == (
        "| model | batch 1 p50 ms | batch 1 p95 ms | batch 1 fastest ms | batch 32 queries/s |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        "| student_onnx_int8 | 1.791 | 2.323 | 1.042 | 700.0 |\n"
        "| baseline | 0.22 | 0.355 | n/a | 4339.2 |\n"
    )
    with pytest.raises(ValueError):
        report.render_table(("a", "b"), [(1,)])


def test_fill_tables_keeps_the_prose():
    doc = "# R\n\nProse.\n\n<!-- table: t -->\n\nstale\n\n<!-- /table -->\n\nMore prose.\n"
    table = report.render_table(("k", "v"), [("x", 1)], "lr")
    filled = report.fill_tables(doc, {"t": table, "extra": table})
    assert filled.startswith("# R\n\nProse.\n\n<!-- table: t -->\n\n| k | v |\n| --- | ---: |\n")
    assert "stale" not in filled and "More prose.\n" in filled
    assert filled.rstrip().endswith("<!-- /table -->") and "## extra" in filled
    assert "_(not in this report)_" in report.fill_tables(doc, {})


def test_nlu_report_tables_reproduce_the_committed_docs():
    """Rendering docs/nlu_report.json (and the training metrics it attaches) into
    docs/nlu_report.md changes nothing: the committed tables are the JSON's."""
    r = json.loads((DOCS / "nlu_report.json").read_text())
    args = argparse.Namespace(
        gpu_metrics=DOCS / "nlu_training_metrics.json",
        ablation_metrics=DOCS / "history" / "nlu_training_ablation_metrics.json",
        round1=DOCS / "history" / "nlu_report_round1.json",
        cpu_metrics=[
            DOCS / "nlu_training_cpu_metrics.json",
            DOCS / "nlu_training_cpu2_metrics.json",
        ],
        pilot=DOCS / "nlu_aug_pilot.json",
    )
    evaluate.attach_training(r, args)
    doc = (DOCS / "nlu_report.md").read_text()
    assert evaluate.render(r, doc) == doc
    assert set(evaluate.tables(r)) == {
        "accuracy.test",
        "accuracy.asr_fixtures",
        "per_label",
        "speed",
        "speed_graph",
        "size",
        "gpu_latency",
        "ablation",
        "cpu_stages",
        "pilot",
        "targets",
    }
