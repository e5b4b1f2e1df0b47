"""Build the labelled corpus: split templates, product lines and names, sample, render, write.

Splits hold out generalization units: the test (and dev) split uses templates, product lines
and associate first names that train never sees, so scores measure new wordings, products
and people rather than memory of the fixtures.

The query templates are data, not code: a domain pack's `templates.yaml` (language ->
intent -> list of template strings; default the retail pack's,
`assistant/domains/retail/templates.yaml`, whose header comment documents the template
mini-language that `lab.nlu.corpus.render` fills). `build --templates PATH` points at another.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from tqdm import tqdm

import assistant
from lab.nlu.corpus.catalog import Product, load_catalog
from lab.nlu.corpus.render import Renderer, Template
from lab.nlu.corpus.stats import corpus_stats, write_markdown
from lab.nlu.corpus.unlabelled import unlabelled_pool

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")
LANGUAGES = ("en", "es")  # what the renderer and the lexicon know
# The retail domain pack's templates, read from the installed `assistant` package.
DEFAULT_TEMPLATES = Path(assistant.__file__).parent / "domains" / "retail" / "templates.yaml"


@dataclass(frozen=True)
class CorpusConfig:
    """What to generate. Shares are fractions in [0, 1]."""

    seed: int = 13
    n_examples: int = 200_000  # labelled, all splits together
    n_unlabelled: int = 120_000  # lines in unlabelled.txt
    spanish_share: float = 0.4
    dev_share: float = 0.1  # of the examples
    test_share: float = 0.1
    held_out_templates: tuple[float, float] = (0.12, 0.2)  # dev, test: per language and intent
    held_out_lines: tuple[float, float] = (0.1, 0.15)  # dev, test: of the product lines
    held_out_names: tuple[float, float] = (0.1, 0.15)  # dev, test: of the first names
    intent_weights: dict = field(
        default_factory=lambda: {
            "find_product": 0.3,
            "check_stock": 0.3,
            "top_sellers": 0.12,
            "associate_schedule": 0.14,
            "out_of_scope": 0.14,
        }
    )

    def __post_init__(self) -> None:
        if not 0 <= self.spanish_share <= 1:
            raise ValueError("spanish_share must be in [0, 1]")
        if self.dev_share + self.test_share >= 1:
            raise ValueError("dev_share + test_share must be below 1")
        if self.n_examples < 10:
            raise ValueError("n_examples must be at least 10")


def load_templates(path: str | Path = DEFAULT_TEMPLATES) -> list[Template]:
    """Every template of a templates YAML file (language -> intent -> list of strings), with
    ids `<lang>.<intent>.<index>`, in the file's order.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid YAML of that shape, or names a language other than en/es.
    """
    path = Path(path)
    try:
        table = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a mapping of language -> intent -> templates")
    out = []
    for lang, intents in table.items():
        if lang not in LANGUAGES:
            raise ValueError(f"{path}: language {lang!r} is not one of {', '.join(LANGUAGES)}")
        if not isinstance(intents, dict):
            raise ValueError(f"{path}: {lang}: expected a mapping of intent -> templates")
        for intent, texts in intents.items():
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{path}: {lang}.{intent}: expected a list of strings")
            out.extend(
                Template(f"{lang}.{intent}.{i}", lang, intent, t) for i, t in enumerate(texts)
            )
    return out


def all_templates(path: str | Path | None = None) -> list[Template]:
    """Every template of `path` (default: the retail pack's `templates.yaml`)."""
    return load_templates(DEFAULT_TEMPLATES if path is None else path)


def _three_way(
    items: list, shares: tuple[float, float], rng: random.Random, at_least_one: bool
) -> dict:
    """Shuffle `items` and cut off dev and test parts (each >= 1 item when `at_least_one`)."""
    items = list(items)
    rng.shuffle(items)
    n_dev, n_test = (round(len(items) * s) for s in shares)
    if at_least_one and len(items) >= 3:
        n_dev, n_test = max(1, n_dev), max(1, n_test)
    return {
        "test": items[:n_test],
        "dev": items[n_test : n_test + n_dev],
        "train": items[n_test + n_dev :],
    }


def _split_templates(groups: dict, cfg: CorpusConfig, rng: random.Random) -> dict:
    """Held-out templates per (language, intent), redrawn until every split can produce every
    entity label of its language (else a dev or test split could lack, say, Spanish STORE)."""
    best, best_missing = None, None
    for _ in range(200):
        split = {
            key: {
                s: sorted(ts, key=lambda t: t.id)
                for s, ts in _three_way(groups[key], cfg.held_out_templates, rng, True).items()
            }
            for key in sorted(groups)
        }
        missing = 0
        for lang in ("en", "es"):
            wanted = set().union(
                *(t.labels for key in groups if key[0] == lang for t in groups[key])
            )
            for s in SPLITS:
                have = set().union(
                    *(t.labels for key in split if key[0] == lang for t in split[key][s])
                )
                missing += len(wanted - have)
        if best is None or missing < best_missing:
            best, best_missing = split, missing
        if missing == 0:
            break
    if best_missing:
        log.warning(
            "template split: %d (language, label) pairs missing from some split", best_missing
        )
    return best


def load_lexicon() -> dict:
    return json.loads(
        resources.files("lab.nlu.corpus").joinpath("data/lexicon.json").read_text("utf-8")
    )


class _ProductPools:
    """Per split: the lines (and their products) able to fill a template's needs."""

    def __init__(self, products: list[Product], lines: set[str]):
        self.by_need: dict[frozenset, tuple[list[str], dict[str, list[Product]]]] = {}
        self.products = [p for p in products if p.line in lines]

    def pick(self, needs: set[str], rng: random.Random) -> Product | None:
        key = frozenset(needs)
        if key not in self.by_need:
            by_line: dict[str, list[Product]] = defaultdict(list)
            for p in self.products:
                if (
                    ("SIZE" not in needs or p.size)
                    and ("COLOR" not in needs or p.color)
                    and ("BRAND" not in needs or p.brand)
                ):
                    by_line[p.line].append(p)
            self.by_need[key] = (sorted(by_line), by_line)
        lines, by_line = self.by_need[key]
        if not lines:
            return None
        return rng.choice(by_line[rng.choice(lines)])


class _SkuIndex:
    """Which catalog skus a product mention refers to (for answer accuracy downstream)."""

    def __init__(self, products: list[Product]):
        self.by_line: dict[str, list[Product]] = defaultdict(list)
        self.by_type: dict[tuple[str, str], list[Product]] = defaultdict(list)
        for p in products:
            self.by_line[p.line].append(p)
            self.by_type[("en", p.product_en.lower())].append(p)
            self.by_type[("es", p.product_es.lower())].append(p)

    def skus(self, p: Product, lang: str, mentions: dict) -> list[str]:
        if mentions.get("brand"):
            cands = self.by_line[p.line]
        else:
            cands = self.by_type[
                (lang, (p.product_en if lang == "en" else p.product_es).lower())
            ] or [p]
        if mentions.get("size"):
            cands = [c for c in cands if c.size == p.size]
        if mentions.get("color"):
            cands = [c for c in cands if c.color == p.color]
        return sorted({c.sku for c in cands})


def _departments(products: list[Product], lexicon: dict) -> list[tuple[str, str]]:
    """(EN, ES) department names from the catalog, ES filled from the lexicon when missing."""
    known = {en.lower(): es for en, es in lexicon["departments"]}
    pairs = {
        (p.department, p.department_es or known.get(p.department.lower(), p.department))
        for p in products
        if p.department
    }
    return sorted(pairs)


def build_corpus(
    catalog: str | Path,
    out_dir: str | Path,
    cfg: CorpusConfig,
    doc: str | Path | None = None,
    progress: bool = True,
    templates: str | Path | None = None,
) -> dict:
    """Generate train/dev/test JSONL, unlabelled.txt and stats.json under `out_dir`.

    `templates` is a templates YAML file (default: the retail pack's `templates.yaml`).

    Returns:
        the statistics dict (also written to stats.json); wall time is logged, not stored,
        so that the same seed gives byte-identical files.
    """
    t0 = time.perf_counter()
    rng = random.Random(cfg.seed)
    templates = all_templates(templates)
    template_split: dict[str, dict[tuple[str, str], list[Template]]] = {
        s: defaultdict(list) for s in SPLITS
    }
    groups: dict[tuple[str, str], list[Template]] = defaultdict(list)
    for t in templates:
        groups[(t.language, t.intent)].append(t)
    languages = [
        lang
        for lang, share in (("en", 1 - cfg.spanish_share), ("es", cfg.spanish_share))
        if share > 0
    ]
    missing = [
        f"{lang}.{i}"
        for lang in languages
        for i in sorted(cfg.intent_weights)
        if not groups.get((lang, i))
    ]
    if missing:
        raise ValueError(f"no templates for {', '.join(missing)}")

    products = load_catalog(catalog)
    lexicon = load_lexicon()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    for key, chosen in _split_templates(groups, cfg, rng).items():
        for split in SPLITS:
            template_split[split][key] = chosen[split]
    # Lines with colours are split apart from the rest so that every split can ask for colours.
    colored = sorted({p.line for p in products if p.color})
    plain = sorted({p.line for p in products} - set(colored))
    line_split: dict[str, set[str]] = {s: set() for s in SPLITS}
    for group in (colored, plain):
        for s, chosen in _three_way(group, cfg.held_out_lines, rng, True).items():
            line_split[s] |= set(chosen)
    names = {s: {} for s in SPLITS}
    for lang in ("en", "es"):
        for split, chosen in _three_way(
            sorted(lexicon["first_names"][lang]), cfg.held_out_names, rng, True
        ).items():
            names[split][lang] = sorted(chosen)

    renderer = Renderer(lexicon, _departments(products, lexicon), rng)
    sku_index = _SkuIndex(products)
    intents = sorted(cfg.intent_weights)
    weights = [cfg.intent_weights[i] for i in intents]
    sizes = {
        "dev": round(cfg.n_examples * cfg.dev_share),
        "test": round(cfg.n_examples * cfg.test_share),
    }
    sizes["train"] = cfg.n_examples - sizes["dev"] - sizes["test"]

    bar = tqdm(
        total=cfg.n_examples + cfg.n_unlabelled, desc="corpus", unit="ex", disable=not progress
    )
    for split in SPLITS:
        pools = _ProductPools(products, line_split[split])
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(sizes[split]):
                example = _sample(
                    split,
                    cfg,
                    rng,
                    renderer,
                    template_split[split],
                    pools,
                    sku_index,
                    names[split],
                    intents,
                    weights,
                )
                fh.write(json.dumps(example, ensure_ascii=False) + "\n")
                bar.update(1)
    train_pools = _ProductPools(products, line_split["train"])
    train_templates = [t for ts in template_split["train"].values() for t in ts]
    with open(out / "unlabelled.txt", "w", encoding="utf-8") as fh:
        for line in unlabelled_pool(
            cfg.n_unlabelled,
            rng,
            renderer,
            train_templates,
            train_pools,
            names["train"],
            cfg.spanish_share,
        ):
            fh.write(line + "\n")
            bar.update(1)
    bar.close()

    held_out = {
        split: {
            "templates": sorted(t.id for ts in template_split[split].values() for t in ts),
            "lines": sorted(line_split[split]),
            "first_names": names[split],
        }
        for split in SPLITS
    }
    stats = corpus_stats(out, cfg_dict=asdict(cfg), held_out=held_out, n_products=len(products))
    (out / "stats.json").write_text(
        json.dumps(stats, ensure_ascii=False, indent=1, sort_keys=True) + "\n", "utf-8"
    )
    seconds = time.perf_counter() - t0
    log.info(
        "corpus: %d labelled + %d unlabelled lines in %.1f s -> %s",
        cfg.n_examples,
        cfg.n_unlabelled,
        seconds,
        out,
    )
    if doc is not None:
        write_markdown(stats, doc, seconds=seconds)
    return stats


def _sample(
    split, cfg, rng, renderer, templates, pools, sku_index, people, intents, weights
) -> dict:
    """One labelled example of `split` (see docs/corpus.md for the line shape)."""
    lang = "es" if rng.random() < cfg.spanish_share else "en"
    intent = rng.choices(intents, weights)[0]
    for _ in range(20):
        template = rng.choice(templates[(lang, intent)])
        product = pools.pick(template.needs(), rng) if template.uses_product else None
        if product is not None or not template.uses_product:
            break
    else:
        raise RuntimeError(
            f"no {split} product fits any {lang}/{intent} template; catalog too small?"
        )
    r = renderer.render(template, product, people)
    return {
        "text": r.text,
        "language": lang,
        "intent": intent,
        "entities": r.entities,
        "template": template.id,
        "line": product.line if product is not None else None,
        "skus": sku_index.skus(product, lang, r.mentions) if product is not None else [],
        "noisy": r.noisy,
    }
