"""Does the first pass hear the store? Held-out voices and conditions, and real speech.

    python -m lab.bench.hear_the_store --per-language 60 --out docs/hear_the_store.json \
        --markdown docs/hear_the_store.md

Clips: queries of the corpus *test* split (data/corpus_sample/test_sample.jsonl; templates and
phrasings the training corpus never had), spoken by voices kept out of every training set
(en: pico-en-GB, espeak-en-029, piper-en-US-joe when installed; es: pico-es-ES,
espeak-es-419-f2), in four conditions taken in turn: clean; brown noise at 0-20 dB SNR (no
training set uses brown noise); reverberation RT60 0.8 s; telephone (8 kHz, 300-3400 Hz,
G.711 mu-law). Synthesized once into build/hear_the_store/ (a manifest plus WAVs).

Variants: `text` puts the exact words spoken through the text stages (no first pass: what
the text side can do); the others decode the audio (first pass settings as the server runs them: 10 s window, beam 8, 5 readings, no
beam widening), each followed by the deployed second pass, the NLU student and the answerer:
  base           Whisper base, no phrases, language detection trusted (the server before)
  lid            base, and both languages decoded (greedy drafts) when detection is below
                 0.8, weighed by the detector's log prior; lid-noprior without the prior;
                 lid95*: the same below 0.95
  catalog        base, and the catalog's phrases chosen per clip from a greedy draft (the new
                 default of `serve` and `transcribe`)
  catalog-nomerge  the same without the draft's reading merged into the list
  adapted        Whisper base with the store-v1 adapter (asr/data/adapters, lab/whisper_adapt),
                 no phrases; adapted-catalog: with the catalog's phrases
Per variant, language, voice and condition: WER of the final text, brand/product/size/person
words heard in the top-1 and anywhere in the n-best, answer accuracy, first-pass latency (ms,
median) and its ratio to `base` measured in the same run, clip by clip interleaved.
Real speech (../shared/real-speech, skipped when absent): WER of the transcribed clips; the
coffee orders' slot-word recall unbiased, with the menu's phrase list, with the catalog.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, decode_audio, resample
from lab.report import machine_info, write_report
from lab.tts.synth import available_voices, degrade, synthesize, write_wav
from lab.wer import wer
from textnorm import normalize

log = logging.getLogger(__name__)
from lab import REPO  # noqa: E402

TEST_ROWS = REPO / "data" / "corpus_sample" / "test_sample.jsonl"
REAL = REPO.parent / "shared" / "real-speech"
# Voices for tuning decisions (they are in training sets; never report them as held out).
DEV_VOICES = {"en": ("pico-en-US", "espeak-en-us"), "es": ("espeak-es", "espeak-es-419")}
HELD_OUT_VOICES = {
    "en": ("pico-en-GB", "espeak-en-029", "piper-en-US-joe"),
    "es": ("pico-es-ES", "espeak-es-419-f2"),
}
CONDITIONS = ("clean", "noise", "reverb", "telephone")
ENTITY_LABELS = ("BRAND", "PRODUCT", "SIZE", "PERSON", "DEPARTMENT")
REAL_CLIPS = {
    "jfk.flac": ("en", "And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country."),
    "en_librispeech_quilter.wav": ("en", "Mr. Quilter is the apostle of the middle classes and "
                                   "we are glad to welcome his gospel."),
    "en_cheetah_platforms.wav": ("en", "Today only platforms one and three are used."),
    "es_leopard_arenas.wav": ("es", "Las arenas son blanquecinas de grano medio y tiene muy "
                              "poca asistencia."),
    "es_rhasspy_lampara.wav": ("es", "enciende la lámpara de la sala"),
}  # fmt: skip


@dataclass(frozen=True)
class Clip:
    path: str
    row: dict
    voice: str
    condition: str
    snr_db: float | None


# ---- conditions ---------------------------------------------------------------------------


def brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Integrated white noise (1/f^2), the rumble of a store's HVAC and carts."""
    noise = np.cumsum(rng.standard_normal(n))
    noise -= np.convolve(noise, np.ones(400) / 400, mode="same")  # drop the DC drift
    return (noise / (np.std(noise) or 1.0)).astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """8 kHz, 300-3400 Hz band, G.711 mu-law (8 bits), back to 16 kHz."""
    narrow = resample(audio, SAMPLE_RATE, 8000)
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(len(narrow), 1 / 8000)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    narrow = np.clip(np.fft.irfft(spectrum, len(narrow)), -1, 1)
    mu = 255.0
    coded = np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu)
    coded = np.round(coded * 127) / 127
    narrow = np.sign(coded) * ((1 + mu) ** np.abs(coded) - 1) / mu
    return resample(narrow.astype(np.float32), 8000, SAMPLE_RATE)


def apply_condition(audio: np.ndarray, condition: str, snr_db: float | None, seed: int):
    if condition == "noise":
        rng = np.random.default_rng(seed)
        noise = brown_noise(len(audio), rng)
        power = float(np.mean(audio**2)) or 1e-10
        out = audio + noise * np.sqrt(power / 10 ** (snr_db / 10))
        peak = float(np.max(np.abs(out)))
        return (out * (0.9 / peak) if peak > 1 else out).astype(np.float32)
    if condition == "reverb":
        return degrade(audio, reverb_rt60_s=0.8, seed=seed)
    if condition == "telephone":
        return telephone(audio)
    return audio


def rows_by_intent(rows: list[dict], language: str) -> dict[str, list[dict]]:
    """The rows of `language` grouped by intent, in their order (clip sets take intents in
    turn, so that all five are covered)."""
    by_intent: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["language"] == language:
            by_intent[r["intent"]].append(r)
    return by_intent


def build_clips(per_language: int, seed: int, folder: Path, dev: bool = False) -> list[Clip]:
    """Synthesize (once) the held-out clips (dev: the tuning clips); in a fixed order."""
    manifest = folder / f"manifest_{'dev_' if dev else ''}{per_language}_{seed}.jsonl"
    if manifest.is_file():
        return [Clip(**json.loads(line)) for line in manifest.read_text().splitlines()]
    rows = [json.loads(line) for line in TEST_ROWS.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if not r.get("noisy")]
    rng = random.Random(seed)
    have = {v.name for v in available_voices()}
    clips: list[Clip] = []
    folder.mkdir(parents=True, exist_ok=True)
    for language in ("en", "es"):
        voices = [v for v in (DEV_VOICES if dev else HELD_OUT_VOICES)[language] if v in have]
        if not voices:
            raise SystemExit(f"no held-out {language} voice installed (apt: libttspico-utils)")
        by_intent = rows_by_intent(rows, language)
        picked: list[dict] = []
        intents = sorted(by_intent)
        while len(picked) < per_language:  # intents in turn, so all five are covered
            pool = by_intent[intents[len(picked) % len(intents)]]
            picked.append(pool.pop(rng.randrange(len(pool))))
        for k, row in enumerate(tqdm(picked, desc=f"synthesizing {language}")):
            voice, condition = voices[k % len(voices)], CONDITIONS[(k // len(voices)) % 4]
            snr = round(rng.uniform(0, 20), 1) if condition == "noise" else None
            audio = synthesize(row["text"], voice, rate=rng.uniform(0.9, 1.1), seed=k)
            audio = apply_condition(audio, condition, snr, seed=k)
            # named after the manifest: another size or seed must not overwrite this set's WAVs
            path = folder / f"{manifest.stem.removeprefix('manifest_')}_{language}_{k:03d}.wav"
            write_wav(path, audio)
            clips.append(Clip(str(path), row, voice, condition, snr))
    manifest.write_text("\n".join(json.dumps(c.__dict__, ensure_ascii=False) for c in clips))
    return clips


# ---- scoring ------------------------------------------------------------------------------


def words_heard(entity: str, text: str, language: str) -> bool:
    """The entity's words, in order and contiguous, in the text (normalized, no accents)."""
    want = normalize(entity, language, accents=False).split()
    have = normalize(text, language, accents=False).split()
    return bool(want) and any(have[i : i + len(want)] == want for i in range(len(have)))


def answer_right(row: dict, result, inventory) -> bool:
    """Intent right, and the product line / department / person the query names."""
    nlu, answer = result.nlu, result.answer
    if nlu is None or nlu.intent != row["intent"]:
        return False
    if row["intent"] == "out_of_scope":
        return True
    if answer is None:
        return False
    if row.get("line"):
        if not answer.products:
            return False
        product = inventory.product(answer.products[0].sku)
        return product is not None and product.line == row["line"]
    gold = {e["label"]: e["text"] for e in row["entities"]}
    said = normalize(answer.text, row["language"], accents=False)
    if "PERSON" in gold:  # the person's first name in the answer (a day or a week schedule)
        first = normalize(gold["PERSON"].split()[0], row["language"], accents=False)
        return answer.kind == "schedule" and first in said.split()
    if "DEPARTMENT" in gold:
        department = _department_id(gold["DEPARTMENT"], inventory)
        return department is not None and answer.details.get("department") == department
    return True  # nothing named beyond the intent


def _department_id(text: str, inventory) -> str | None:
    key = normalize(text, "en", accents=False)
    for d in inventory.departments().values():
        names = (d.name_en, d.name_es, *d.aliases_en, *d.aliases_es)
        if key in {normalize(n, "en", accents=False) for n in names}:
            return d.id
    return None


# ---- runs ---------------------------------------------------------------------------------


def load_stages(variants: list[str]):
    """One Whisper base and the deployed later stages; the variants share the weights."""
    import copy
    import dataclasses

    from asr.transcriber import LID_CONFIDENT, Transcriber, TranscriberConfig
    from assistant.phrases import catalog_phrases
    from assistant.pipeline import PipelineConfig, load_pipeline

    config = PipelineConfig()
    base = Transcriber(
        TranscriberConfig(nbest=config.nbest, widen_beam=False, window_s=config.window_s)
    )
    # The deployed later stages; the first pass is decoded per variant below.
    pipeline = load_pipeline(dataclasses.replace(config, phrases=False), transcriber=base)
    inventory = pipeline.inventory
    catalog = catalog_phrases(inventory)

    def view(**changes):  # the same loaded weights with other decoding settings
        other = copy.copy(base)
        other.config = dataclasses.replace(base.config, **changes)
        return other

    table = {
        "text": (None, None),
        "base": (base, None),
        "lid": (view(lid_confident=LID_CONFIDENT), None),
        "lid-noprior": (view(lid_confident=LID_CONFIDENT, lid_prior=False), None),
        "lid95": (view(lid_confident=0.95), None),
        "lid95-noprior": (view(lid_confident=0.95, lid_prior=False), None),
        "catalog": (base, catalog),
        "catalog-nomerge": (view(merge_draft=False), catalog),
    }
    if any(v.startswith("adapted") for v in variants):  # Whisper base + the store-v1 adapter
        adapted = Transcriber(dataclasses.replace(base.config, adapter="store-v1"))
        table["adapted"] = (adapted, None)
        table["adapted-catalog"] = (adapted, catalog)
    return {v: table[v] for v in variants}, pipeline, inventory, catalog


def decode(transcriber, phrases, audio, language=None):
    started = time.perf_counter()
    nbest = transcriber.nbest(audio, language, phrases=phrases)
    return nbest, 1000 * (time.perf_counter() - started)


def run_synthetic(clips, variants, pipeline, inventory) -> list[dict]:
    from asr.nbest import Hypothesis, NBest

    records = []
    for clip in tqdm(clips, desc="held-out clips"):
        audio = decode_audio(clip.path)
        row = clip.row
        for name, (transcriber, phrases) in variants.items():
            if name == "text":  # the exact words spoken, no first pass: the text side's ceiling
                nbest = NBest((Hypothesis(row["text"], asr_score=0.0, score=0.0),), row["language"])
                asr_ms = 0.0
            else:
                nbest, asr_ms = decode(transcriber, phrases, audio)
            result = pipeline.understand(nbest, "1", asr_ms)
            text, texts = result.nbest.text, [h.text for h in result.nbest.hypotheses]
            lang = row["language"]
            entities = {
                e["label"]: (words_heard(e["text"], text, lang), any(words_heard(e["text"], t, lang) for t in texts))
                for e in row["entities"] if e["label"] in ENTITY_LABELS
            }  # fmt: skip
            records.append(
                {
                    "variant": name, "language": lang, "voice": clip.voice,
                    "condition": clip.condition, "reference": row["text"], "text": text,
                    "heard_language": result.nbest.language, "asr_ms": asr_ms,
                    "entities": entities, "answer_right": answer_right(row, result, inventory),
                }
            )  # fmt: skip
    return records


def summarize(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in keys)].append(r)
    base_ms = defaultdict(list)
    for r in records:
        if r["variant"] == "base":
            base_ms[tuple(r[k] for k in keys if k != "variant")].append(r["asr_ms"])
    out = []
    for group, rs in sorted(groups.items()):
        lang_of = [r["language"] for r in rs]
        ents = [v for r in rs for v in r["entities"].values()]
        base = base_ms.get(tuple(g for k, g in zip(keys, group, strict=True) if k != "variant"))
        median = statistics.median(r["asr_ms"] for r in rs)
        out.append(
            {
                **dict(zip(keys, group, strict=True)),
                "clips": len(rs),
                "wer": _wer(rs, lang_of),
                "entity_top1": _share([t for t, _ in ents]),
                "entity_nbest": _share([n for _, n in ents]),
                "entities": len(ents),
                "language_right": _share([r["heard_language"] == r["language"] for r in rs]),
                "answer_accuracy": _share([r["answer_right"] for r in rs]),
                "asr_ms_p50": round(median, 1),
                "asr_ratio_to_base": round(median / statistics.median(base), 2) if base else None,
            }
        )
    return out


def summarize_labels(records: list[dict]) -> list[dict]:
    """Entity words heard in the top-1 / anywhere in the n-best, per variant, language, label."""
    groups = defaultdict(list)
    for r in records:
        for label, flags in r["entities"].items():
            groups[(r["variant"], r["language"], label)].append(flags)
    return [
        {
            "variant": v, "language": lang, "label": label, "entities": len(flags),
            "top1": _share(t for t, _ in flags), "nbest": _share(n for _, n in flags),
        }
        for (v, lang, label), flags in sorted(groups.items())
    ]  # fmt: skip


def _wer(rs, languages) -> float:
    by_lang = defaultdict(lambda: ([], []))
    for r, lang in zip(rs, languages, strict=True):
        by_lang[lang][0].append(r["reference"])
        by_lang[lang][1].append(r["text"])
    errors = words = 0
    for lang, (refs, hyps) in by_lang.items():
        n = sum(len(normalize(x, lang).split()) for x in refs)
        errors += wer(refs, hyps, lang) * n
        words += n
    return round(errors / words, 4) if words else 0.0


def _share(flags) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def run_real(variants, catalog) -> dict:
    """WER of the real clips and the coffee orders' slot-word recall."""
    if not REAL.is_dir():
        return {"skipped": "../shared/real-speech absent"}
    from assistant.phrases import PhraseIndex

    out: dict = {"clips": {}, "coffee": {}}
    base, _ = variants["base"]
    for name, (language, reference) in REAL_CLIPS.items():
        audio = decode_audio(REAL / name)
        out["clips"][name] = {
            v: round(wer([reference], [decode(t, p, audio)[0].text], language), 4)
            for v, (t, p) in variants.items()
            if t is not None
        }
    labels = json.loads((REAL / "picovoice-dev" / "labels.json").read_text())
    menu = PhraseIndex.from_lines(_menu_phrases(REAL / "picovoice-dev" / "coffee_maker.yaml"))
    setups = {"base": (base, None), "menu": (base, menu), "catalog": (base, catalog)}
    if "adapted" in variants:
        adapted, _ = variants["adapted"]
        setups.update({"adapted": (adapted, None), "adapted-menu": (adapted, menu)})
    counts = {k: [0, 0, 0] for k in setups}  # clips with every slot word, slot words heard, total
    for file, label in tqdm(sorted(labels.items()), desc="coffee orders"):
        audio = decode_audio(REAL / "picovoice-dev" / "audio" / file)
        slots = [v.strip() for v in label["slots"].values()]
        for k, (t, p) in setups.items():
            text = decode(t, p, audio, "en")[0].text
            heard = [words_heard(s, text, "en") for s in slots]
            counts[k][0] += all(heard)
            counts[k][1] += sum(heard)
            counts[k][2] += len(heard)
    for k, (every, heard, total) in counts.items():
        out["coffee"][k] = {
            "clips": len(labels),
            "every_slot_heard": round(every / len(labels), 4),
            "slot_word_recall": round(heard / total, 4),
        }
    return out


def _menu_phrases(path: Path) -> list[str]:
    import yaml

    grammar = yaml.safe_load(path.read_text(encoding="utf-8"))
    slots = grammar["context"]["slots"]
    return sorted({value for values in slots.values() for value in values})


# ---- report -------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    lines = [
        "# Does the first pass hear the store?",
        "",
        f"Command: `{report['command']}`. Machine: {report['machine']['cores']}-core "
        f"{report['machine']['cpu']}; 1-minute load average {report['machine']['load_avg_1m']} "
        f"at the start, {report['machine_after']['load_avg_1m']} at the end (a shared machine: "
        "latency ratios compare variants decoded clip by clip in the same run). "
        f"{report['clips']} held-out clips; see the module docstring of `lab/bench/hear_the_store.py`.",
        "",
    ]
    cols = ("clips", "wer", "entity_top1", "entity_nbest", "language_right", "answer_accuracy",
            "asr_ms_p50", "asr_ratio_to_base")  # fmt: skip
    for title, key, by in (
        ("Per variant and language", "by_language", ("variant", "language")),
        ("Per variant, language and condition", "by_condition", ("variant", "language", "condition")),
        ("Per variant, language and voice", "by_voice", ("variant", "language", "voice")),
    ):  # fmt: skip
        lines += [f"## {title}", "", "| " + " | ".join(by + cols) + " |",
                  "|" + " --- |" * (len(by) + len(cols))]  # fmt: skip
        for row in report[key]:
            lines.append("| " + " | ".join(str(row[c]) for c in by + cols) + " |")
        lines.append("")
    lines += ["## Entity words heard, per label", "",
              "| variant | language | label | entities | top1 | nbest |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in report.get("by_label", []):
        lines.append("| " + " | ".join(str(row[c]) for c in ("variant", "language", "label", "entities", "top1", "nbest")) + " |")  # fmt: skip
    lines.append("")
    real = report["real"]
    if real and "skipped" not in real:
        decoded = [v for v in report["variants"] if v != "text"]
        lines += ["## Real speech", "", "WER per clip:", "", "| clip | " + " | ".join(decoded) + " |",
                  "|" + " --- |" * (1 + len(decoded))]  # fmt: skip
        for clip, by_variant in real["clips"].items():
            lines.append(f"| {clip} | " + " | ".join(str(by_variant[v]) for v in decoded) + " |")
        lines += ["", "Coffee orders (English forced), slot words heard:", "",
                  "| phrases | clips | every slot word heard | slot-word recall |", "| --- | --- | --- | --- |"]  # fmt: skip
        for k, v in real["coffee"].items():
            lines.append(
                f"| {k} | {v['clips']} | {v['every_slot_heard']} | {v['slot_word_recall']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-language", type=int, default=60)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--variants", nargs="+", default=["text", "base", "lid", "catalog", "catalog-nomerge"]
    )
    parser.add_argument("--clips-dir", type=Path, default=REPO / "build" / "hear_the_store")
    parser.add_argument("--no-real", action="store_true", help="skip ../shared/real-speech")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="tuning clips: training voices, another seed's queries (for choosing settings)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="only write the tables of a report",
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text(encoding="utf-8"))
        print(write_report(report, markdown, None, args.markdown))
        return 0
    logging.basicConfig(level=logging.WARNING)
    if "base" not in args.variants:
        args.variants.insert(0, "base")
    started = machine_info()
    clips = build_clips(args.per_language, args.seed + 1000 * args.dev, args.clips_dir, args.dev)
    variants, pipeline, inventory, catalog = load_stages(args.variants)
    records = run_synthetic(clips, variants, pipeline, inventory)
    report = {
        "command": " ".join(
            ["python -m lab.bench.hear_the_store", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": started,
        "clips": len(clips),
        "variants": args.variants,
        "by_language": summarize(records, ("variant", "language")),
        "by_condition": summarize(records, ("variant", "language", "condition")),
        "by_voice": summarize(records, ("variant", "language", "voice")),
        "by_label": summarize_labels(records),
        "real": {} if args.no_real else run_real(variants, catalog),
        "records": records,
    }
    report["machine_after"] = machine_info()
    print(write_report(report, markdown, args.out, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
