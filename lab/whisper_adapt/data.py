"""Synthetic store queries -> frozen-encoder outputs, cached in build/whisper_adapt/data/.

Texts: the synthetic corpus's *train* split (the dev split for the dev set; never test), the
clean rows only (the corpus's "noisy" rows imitate typed typos and fillers, not speech), plus
catalog product names ("Huggies Diapers, Size 4", "Pañales Huggies, Talla 4"). Voices: the
training voices of voices.py. Each clip is degraded once (augment.py) and encoded once by the
CTranslate2 encoder the runtime uses (int8 on CPU) with the server's 10 s window (1000 mel
frames; asr/transcriber.py::_encode), so training runs the decoder only.

Layout of a split folder: `manifest.jsonl` (one row per clip: id, text, language, voice, rate,
pitch, condition, phrases, shard, row) and `enc_<worker>.npy`, float16 (clips, 500, 512).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import random
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lab.whisper_adapt import augment, voices

log = logging.getLogger(__name__)

WINDOW_FRAMES = 1000  # the server's window_s=10 at 100 mel frames a second
MAX_SPEECH_S = 9.0  # longer clips would widen the server's window; none are kept
PHRASE_LABELS = ("BRAND", "PRODUCT", "PERSON", "DEPARTMENT")


@dataclass(frozen=True)
class DataConfig:
    """What `python -m lab.whisper_adapt data` builds. Flags map to fields (kebab-case)."""

    corpus: str = "build/whisper_adapt/corpus"
    catalog: str = "build/whisper_adapt/catalog.jsonl"
    out: str = "build/whisper_adapt/data"
    n_train: int = 3000
    n_dev: int = 240
    catalog_share: float = 0.15  # share of clips that speak a catalog product name
    kokoro_share: float = 0.25  # Kokoro is ~20x slower to synthesize than Pico/espeak-ng
    clean_share: float = 0.2
    workers: int = 2  # the machine has 2 cores, shared
    seed: int = 13
    model_dir: str | None = None  # CTranslate2 Whisper; None: the assembled base


# ---- texts and phrases ------------------------------------------------------------------


def load_catalog(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def stem(name: str) -> str:
    """'Huggies Diapers, Size 4' -> 'Huggies Diapers' (the product line's name)."""
    return name.split(",")[0].strip()


def phrase_pools(catalog: list[dict]) -> dict[str, list[str]]:
    """Catalog phrases per language (brands, line names, product types, departments): the
    distractors a prompt draws from."""
    pools: dict[str, set[str]] = {"en": set(), "es": set()}
    for row in catalog:
        for lang in ("en", "es"):
            pools[lang].add(row["brand"])
            pools[lang].add(stem(row[f"name_{lang}"]))
            pools[lang].add(row[f"product_{lang}"])
        pools["en"].add(row["department"])
        pools["es"].add(row["department_es"])
    return {lang: sorted(p) for lang, p in pools.items()}


def write_phrase_pools(cfg: DataConfig) -> Path:
    """cfg.out/phrase_pools.json: the distractor pools training draws prompts from."""
    path = Path(cfg.out) / "phrase_pools.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    pools = phrase_pools(load_catalog(cfg.catalog))
    path.write_text(json.dumps(pools, ensure_ascii=False, indent=0))
    return path


def right_phrases(example: dict, by_sku: dict[str, dict]) -> list[str]:
    """Catalog phrases that occur in the utterance: its brand/product/person/department spans
    and, when it names a product line, the line's brand and name."""
    out = [e["text"] for e in example.get("entities", []) if e["label"] in PHRASE_LABELS]
    rows = [by_sku[s] for s in example.get("skus", [])[:1] if s in by_sku]
    lang = example["language"]
    for row in rows:
        if any(e["label"] == "BRAND" for e in example.get("entities", [])):
            out.append(row["brand"])
            out.append(stem(row[f"name_{lang}"]))
    return list(dict.fromkeys(p for p in out if p.strip()))


def select_texts(cfg: DataConfig, split: str, n: int, rng: random.Random) -> list[dict]:
    """n rows {text, language, phrases}: corpus rows of `split` plus catalog names."""
    if split == "test":
        raise ValueError("the test split is never used for adaptation")
    catalog = load_catalog(cfg.catalog)
    by_sku = {row["sku"]: row for row in catalog}
    rows = [
        json.loads(line)
        for line in (Path(cfg.corpus) / f"{split}.jsonl").read_text().splitlines()
        if line.strip()
    ]
    # Clean rows written as Whisper writes (capital first, punctuated): lowercase rows would
    # teach the decoder a style it does not have.
    rows = [
        r for r in rows if not r.get("noisy") and (r["text"][0].isupper() or r["text"][0] in "¿¡")
    ]
    rng.shuffle(rows)
    n_catalog = int(round(n * cfg.catalog_share))
    picked = [
        {"text": r["text"], "language": r["language"], "phrases": right_phrases(r, by_sku)}
        for r in rows[: n - n_catalog]
    ]
    # Catalog names: dev draws from the other half of the catalog so its names are not trained.
    half = sorted(catalog, key=lambda row: row["sku"])
    half = half[: len(half) // 2] if split == "train" else half[len(half) // 2 :]
    for row in rng.sample(half, n_catalog):
        lang = rng.choice(["en", "es"])
        name = row[f"name_{lang}"]
        text = name if rng.random() < 0.5 else stem(name)
        picked.append({"text": text, "language": lang, "phrases": [row["brand"], stem(name)]})
    rng.shuffle(picked)
    return picked


def plan(cfg: DataConfig, split: str) -> list[dict]:
    """The manifest rows (without shard/row): text, voice, rate, pitch, condition, seed."""
    rng = random.Random(f"{cfg.seed}-{split}")
    nprng = np.random.default_rng(zlib.crc32(f"{cfg.seed}-{split}".encode()))
    n = cfg.n_train if split == "train" else cfg.n_dev
    items = []
    for i, row in enumerate(select_texts(cfg, split, n, rng)):
        pool = voices.voices_for(row["language"])
        kokoro = [v for v in pool if v.engine == "kokoro"]
        others = [v for v in pool if v.engine != "kokoro"]
        voice = rng.choice(kokoro if rng.random() < cfg.kokoro_share else others)
        condition = augment.draw_condition(nprng, cfg.clean_share)
        items.append(
            {
                "id": f"{split}-{i:05d}",
                **row,
                "voice": voice.name,
                "rate": round(rng.uniform(0.85, 1.2), 2),
                "pitch": round(rng.uniform(0.8, 1.25), 2),
                "condition": asdict(condition),
                "seed": rng.randrange(2**31),
            }
        )
    return items


# ---- synthesis + encoding (one worker process per core) ---------------------------------


def _voice(name: str, language: str) -> voices.TrainVoice:
    return next(v for v in voices.TRAIN_VOICES if v.name == name and v.language == language)


def _babble_bank(cfg: DataConfig, cache: Path) -> list[np.ndarray]:
    """Babble talkers: training voices (Pico/espeak-ng) reading other train-split texts."""
    rng = random.Random(f"{cfg.seed}-babble")
    rows = [json.loads(x) for x in (Path(cfg.corpus) / "train.jsonl").read_text().splitlines()]
    bank = []
    for row in rng.sample(rows, 24):
        pool = [v for v in voices.voices_for(row["language"]) if v.engine != "kokoro"]
        bank.append(voices.speak(row["text"], rng.choice(pool), 1.0, 1.0, cache, pad_s=0.0))
    return bank


def _worker(args: tuple) -> tuple[int, list[dict]]:
    cfg, items, out_dir, worker = args
    import ctranslate2
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor
    from tqdm import tqdm

    from asr.models import resolve_model_dir

    cache = Path(cfg.out).parent
    model = ctranslate2.models.Whisper(
        str(resolve_model_dir(cfg.model_dir)), device="cpu", compute_type="int8", intra_threads=1
    )
    features = FeatureExtractor(feature_size=model.n_mels)
    bank = _babble_bank(cfg, cache)
    encoded, kept = [], []
    for item in tqdm(items, desc=f"worker {worker}", position=worker, mininterval=5):
        rng = np.random.default_rng(item["seed"])
        voice = _voice(item["voice"], item["language"])
        try:
            clean = voices.speak(item["text"], voice, item["rate"], item["pitch"], cache)
        except Exception as error:  # noqa: BLE001 - a failed clip is skipped, not fatal
            log.warning("skipping %s: %s", item["id"], error)
            continue
        audio = augment.apply(clean, augment.Condition(**item["condition"]), rng, bank)
        if len(audio) > MAX_SPEECH_S * 16_000:
            continue
        mel = pad_or_trim(features(audio), WINDOW_FRAMES)[None].astype(np.float32)
        out = model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), to_cpu=True
        )
        encoded.append(np.asarray(out)[0].astype(np.float16))
        kept.append(
            {**item, "shard": f"enc_{worker}.npy", "row": len(kept), "seconds": len(audio) / 16_000}
        )
    np.save(out_dir / f"enc_{worker}.npy", np.stack(encoded))
    return worker, kept


def build_split(cfg: DataConfig, split: str) -> Path:
    """Synthesize, degrade and encode one split with cfg.workers processes; returns its folder."""
    out_dir = Path(cfg.out) / split
    out_dir.mkdir(parents=True, exist_ok=True)
    items = plan(cfg, split)
    chunks = [items[w :: cfg.workers] for w in range(cfg.workers)]
    jobs = [(cfg, chunk, out_dir, w) for w, chunk in enumerate(chunks)]
    with mp.get_context("spawn").Pool(cfg.workers) as pool:
        results = sorted(pool.map(_worker, jobs))
    rows = [row for _, kept in results for row in kept]
    with open(out_dir / "manifest.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    write_phrase_pools(cfg)
    log.info("%s: %d clips in %s", split, len(rows), out_dir)
    return out_dir


def load_split(folder: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(manifest rows, {shard name: float16 array (clips, 500, d_model)}) of a built split."""
    folder = Path(folder)
    rows = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines() if x]
    shards = {name: np.load(folder / name, mmap_mode="r") for name in {r["shard"] for r in rows}}
    return rows, shards
