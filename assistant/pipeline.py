"""Wiring of the stages for the server: Whisper n-best -> rescoring -> parsing -> answer.

Every stage is optional except the first pass, and each is imported inside try/except so
the server runs with whatever exists (a missing rescorer: first-pass order; a missing
answerer: finals without an answer). One loaded model serves every session: the server
calls `finals` with the utterances of all sessions that ended within a few milliseconds
of each other, and the first pass decodes them in one `nbest_batch` call.

    pipeline = load_pipeline(PipelineConfig())
    pipeline.finals([FinalRequest(audio, "en", "1")]) -> [FinalResult]   (blocking)
    pipeline.understand(nbest, store="1") -> FinalResult                  (the later stages)
    pipeline.partial(audio, None) -> ("where can I", "en") | None          (blocking)

The `final` event is built from a FinalResult in assistant.events.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.contract import DecodeOptions, DecodingConfig
from asr.nbest import NBest
from asr.transcriber import SERVED_ADAPTER
from assistant.answer_stage import DB_DOWN, is_database_error
from assistant.events import ErrorCode
from assistant.phrases import HeardDraft
from assistant.slots import SLOT_BONUS_NATS, SlotFiller, rank_by_slots

if TYPE_CHECKING:
    from assistant.answer import Answerer
    from assistant.inventory import Inventory
    from assistant.linker import Linker
    from assistant.template_answer import TemplateAnswerer
    from nlu.schema import Parser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """What to load. Defaults work after `scripts/setup.sh`."""

    nbest: int = DecodingConfig.nbest  # readings per final
    rescore: bool = True  # use the committed RescoreBERT when it is there
    cpu_threads: int = 0  # CTranslate2 threads; 0: the transcriber's default
    partial_beam: int = 1  # greedy partial decodes: a third of the cost of beam 8 on CPU
    # Re-decoding with beams up to 32 to fill nbest readings costs several decodes per final;
    # a live answer takes the readings one beam gives.
    widen_beam: bool = False
    # Encoder window (s), grown to fit longer utterances. Queries last 2-5 s; a 10 s window
    # gives the same fixture WER as Whisper's 30 s at about a third of the encoder cost
    # (docs/asr_benchmark.md), which is most of the end-of-speech-to-final latency on a CPU.
    window_s: float = 10.0
    asr_backend: str = "auto"  # "ctranslate2", "torch" (CUDA 13 GPUs) or "auto" (asr.backends)
    database_url: str | None = None  # None: assistant.env.database_url()
    # Where each model runs: "auto" (CUDA when present), "cpu" or "cuda".
    device: str = "auto"  # first pass
    rescore_device: str = "auto"  # second pass (ONNX Runtime)
    nlu_device: str = "auto"  # NLU student (ONNX Runtime)
    # Bias each final toward the store's catalog words (assistant.phrases), chosen per utterance
    # from a greedy draft; False decodes unbiased unless the client gives phrases.
    phrases: bool = True
    # First-pass adapter merged into Whisper base (asr.adapter); None: Whisper base as published.
    adapter: str | None = SERVED_ADAPTER
    # The domain pack (assistant.domain): its student, phrase list and answers. "retail" is
    # the store assistant over the inventory database; a name under assistant/domains/ or a
    # pack directory.
    domain: str = "retail"
    # A pack with closed slots: nats added to a hypothesis per slot it fills with one of the
    # pack's values (assistant.slots.rank_by_slots); 0 keeps the rescored order.
    slot_bonus_nats: float = SLOT_BONUS_NATS

    def __post_init__(self) -> None:
        from assistant.domain import load_domain

        # a DomainError (a ValueError) naming the pack's problem, before any model loads
        load_domain(self.domain).require_student()
        if self.slot_bonus_nats < 0:
            raise ValueError("slot_bonus_nats must be >= 0")


@dataclass(frozen=True)
class FinalRequest:
    """One ended utterance. audio: float32 [n] at 16 kHz; language: "en", "es" or None (detect)."""

    audio: np.ndarray = field(repr=False)
    language: str | None
    store: str
    # The client's phrase list (websocket `start` "phrases"); None: the catalog's phrases.
    phrases: tuple[str, ...] | None = None
    # What a partial decode heard of this speech (asr.streaming: Speculation.heard): the
    # draft the phrases are chosen from, instead of a draft decode of the first pass's own.
    heard: str | None = None


@dataclass(frozen=True)
class FinalResult:
    """Everything the `final` event carries, plus the errors to report beside it.

    errors: (ErrorCode, message) pairs, e.g. (ErrorCode.DB_UNAVAILABLE, "...").
    nlus: the parse of every hypothesis of `nbest`, in its order, when they were parsed in
    one batch (None otherwise), so that an answer given later (the server's answer stage)
    decides from the same parses without parsing them again.
    """

    nbest: NBest
    nlu: Any | None  # nlu.schema.NluResult
    answer: Any | None  # assistant.answer.Answer
    timings_ms: dict[str, float]
    errors: tuple[tuple[str, str], ...] = ()
    nlus: tuple | None = field(default=None, repr=False)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


class Pipeline:
    """The loaded stages. Thread-safe: the models keep no per-call state."""

    def __init__(
        self,
        transcriber,
        reranker=None,
        parser=None,
        answerer=None,
        config=None,
        inventory=None,
        phrases=None,
    ):
        self.config = config or PipelineConfig()
        # assistant.phrases.PhraseIndex of the catalog (None: no catalog biasing)
        self.phrases = phrases if self.config.phrases else None
        self.inventory = inventory  # assistant.inventory Inventory, for the store list
        self.transcriber = transcriber
        self.reranker = reranker
        self.parser = parser
        self.answerer = answerer
        # Partials: the same loaded model, greedy, per call (finals may later go through a
        # continuous decoder; partials stay on the model itself).
        self._partial_model = transcriber
        self._partial_options = DecodeOptions(
            nbest=1, beam_size=self.config.partial_beam, widen_beam=False
        )
        # Finals first: a partial decode is skipped while any final batch runs (they would
        # share the same cores, and the final is what the associate waits for). A count, not
        # a flag: with continuous batching several final batches run at once.
        self._finals_in_flight = 0
        self._finals_lock = threading.Lock()
        # One partial decode at a time across all sessions: partials are a courtesy, and N
        # concurrent ones would starve the finals on a small CPU.
        self._partial_slot = threading.Lock()

    def describe(self) -> dict[str, str | None]:
        """Which implementation serves each stage (for /healthz and the log)."""
        name = lambda obj: None if obj is None else type(obj).__name__  # noqa: E731
        return {
            "asr": name(self.transcriber),
            "rescore": name(self.reranker),
            "nlu": name(self.parser),
            "answer": name(self.answerer),
        }

    def stores(self) -> list[dict[str, str]]:
        """[{"id", "name", "language"}] of the inventory's stores ([] when it is unreachable)."""
        if self.inventory is None:
            return []
        try:
            stores = self.inventory.stores()
        except Exception as error:
            log.warning("store list unavailable: %s", error)
            return []
        return [
            {"id": s.id, "name": f"{s.id} · {s.name}", "language": s.language}
            for s in stores.values()
        ]

    def partial(self, audio: np.ndarray, language: str | None) -> tuple[str, str] | None:
        """Greedy decode of the utterance so far -> (text, language); None when skipped."""
        if self._finals_in_flight or not self._partial_slot.acquire(blocking=False):
            return None
        try:
            nbest = self._partial_model.nbest(audio, language, options=self._partial_options)
        finally:
            self._partial_slot.release()
        return nbest.text, nbest.language

    def with_final_decoder(self, decoder) -> Pipeline:
        """The same stages with finals decoded by `decoder` (e.g. asr.torch_continuous's
        ContinuousDecoder over this pipeline's model); partials stay on the model itself."""
        other = copy.copy(self)  # shares the loaded stages, the partial model and the locks
        other.transcriber = decoder
        return other

    def finals(self, requests: list[FinalRequest], answer: bool = True) -> list[FinalResult]:
        """First pass for all requests in one batch, then each through the later stages
        (`answer` False: no answer stage; the server answers off the batch worker)."""
        if not requests:
            return []
        with self._finals_lock:
            self._finals_in_flight += 1
        try:
            started = time.perf_counter()
            selectors = [self._phrases_for(r) for r in requests]
            # Only a transcriber that is asked to bias needs to know of phrases.
            biasing = {"phrases": selectors} if any(selectors) else {}
            nbests = self.transcriber.nbest_batch(
                [r.audio for r in requests],
                [r.language for r in requests],
                nbest=self.config.nbest,
                **biasing,
            )
            asr_ms = _ms(started)
            return [
                self.understand(nb, r.store, asr_ms, answer)
                for r, nb in zip(requests, nbests, strict=True)
            ]
        finally:
            with self._finals_lock:
                self._finals_in_flight -= 1

    def _phrases_for(self, request: FinalRequest):
        """The phrase selector of a request: the client's list, else the catalog's; chosen
        from what a partial decode heard when the request carries it."""
        selector = self.phrases if request.phrases is None else _client_phrases(request.phrases)
        if request.heard and selector is not None and selector.needs_draft:
            return HeardDraft(selector, (request.heard,))
        return selector

    def understand(
        self, nbest: NBest, store: str, asr_ms: float = 0.0, answer: bool = True
    ) -> FinalResult:
        """Rescoring, parsing and (when `answer`) the answer for one first-pass n-best list.

        Each stage that fails is skipped with its error in the result; never raises."""
        timings = {"asr": asr_ms, "rescore": 0.0, "nlu": 0.0, "answer": 0.0}
        errors: list[tuple[str, str]] = []
        if self.reranker is not None:
            t = time.perf_counter()
            try:
                nbest = self.reranker.rank(nbest)
            except Exception:  # the first-pass order is a fine answer
                log.exception("rescoring failed; keeping the first-pass order")
            timings["rescore"] = _ms(t)
        nlu = reply = None
        nlus = None
        if self.parser is not None and nbest.text.strip():
            t = time.perf_counter()
            try:
                # every hypothesis in one batched call (the student costs about the same for
                # five short queries as for one): the answerer decides from all of them
                texts = [h.text for h in nbest.hypotheses if h.text.strip()]
                if len(texts) == len(nbest.hypotheses) and len(texts) > 1:
                    nlus = self.parser.parse_batch(texts, [nbest.language] * len(texts))
                    if isinstance(self.parser, SlotFiller):  # a pack's closed slots
                        nbest, nlus = rank_by_slots(nbest, nlus, self.config.slot_bonus_nats)
                    nlu = nlus[0]
                else:
                    nlu = self.parser.parse(nbest.text, nbest.language)
            except Exception:
                log.exception("parser failed on %r", nbest.text)
                errors.append(
                    (ErrorCode.PIPELINE, "could not understand this utterance; try again")
                )
            timings["nlu"] = _ms(t)
        if answer and self.answerer is not None and nlu is not None:
            t = time.perf_counter()
            try:
                reply = self.answerer.answer(nlu, store, nbest=nbest, nlus=nlus)
                if reply.intent != nlu.intent:  # the intent the whole n-best list supports
                    nlu = dataclasses.replace(nlu, intent=reply.intent)
            except Exception as error:
                if is_database_error(error):
                    log.warning("inventory database unavailable: %s", error)
                    errors.append((ErrorCode.DB_UNAVAILABLE, DB_DOWN))
                else:
                    log.exception("answer failed")
                    errors.append((ErrorCode.PIPELINE, "could not build an answer; try again"))
            timings["answer"] = _ms(t)
        timings["total"] = sum(timings.values())
        return FinalResult(nbest, nlu, reply, timings, tuple(errors), _tuple(nlus))


def _tuple(items) -> tuple | None:
    return None if items is None else tuple(items)


@functools.lru_cache(maxsize=64)
def _client_phrases(phrases: tuple[str, ...]):
    """One index per distinct client list (sessions of one app send the same list)."""
    from assistant.phrases import PhraseIndex

    return PhraseIndex.from_lines(phrases)


def load_pipeline(config: PipelineConfig | None = None, transcriber=None) -> Pipeline:
    """Load every stage that exists; log which implementation serves each one.

    transcriber: an already loaded first pass to share (tests, benchmarks); None loads the one
    `config` describes. Raises whatever the first pass raises when Whisper is missing (the
    caller turns it into a clear message); the later stages are optional.
    """
    from assistant.domain import load_domain

    config = config or PipelineConfig()
    pack = load_domain(config.domain)
    if transcriber is None:
        transcriber = load_first_pass(config)
    parser, answerer, inventory = _load_nlu_and_answerer(config)
    second_pass = config.rescore and pack.second_pass
    reranker = load_second_pass(pack, inventory, config.rescore_device) if second_pass else None
    phrases = _load_phrases(pack, inventory) if config.phrases else None
    pipeline = Pipeline(transcriber, reranker, parser, answerer, config, inventory, phrases)
    log.info("pipeline stages: %s", pipeline.describe())
    return pipeline


def load_first_pass(config: PipelineConfig):
    """The Whisper first pass `config` describes (asr.backends picks the backend)."""
    from asr.backends import load_transcriber
    from asr.transcriber import TranscriberConfig

    return load_transcriber(
        TranscriberConfig(
            nbest=config.nbest,
            cpu_threads=config.cpu_threads,
            widen_beam=config.widen_beam,
            window_s=config.window_s,
            adapter=config.adapter,
            device=config.device,
        ),
        backend=config.asr_backend,
    )


def domain_phrases(pack, inventory):
    """The phrases the first pass is biased with: the retail catalog's per language (the
    curated lists when the database is down), or the pack's list."""
    from assistant.phrases import PhraseIndex, catalog_phrases

    if pack.is_retail and not pack.phrases:
        from assistant.inventory import Inventory

        return catalog_phrases(inventory or Inventory())
    return PhraseIndex({lang: pack.phrases for lang in pack.languages})


def domain_gazetteer(pack, inventory):
    """The second pass's catalog words: the store's gazetteer, or the pack's phrases."""
    from assistant.gazetteer import build_gazetteer
    from nlu.gazetteer import Gazetteer

    if pack.is_retail:
        return build_gazetteer(inventory)
    return Gazetteer(products=pack.phrases)


def _load_phrases(pack, inventory):
    """The domain's phrases for biasing the first pass (None on failure: unbiased)."""
    try:
        return domain_phrases(pack, inventory)
    except Exception:
        log.exception("domain phrases failed to load: finals decode unbiased")
        return None


def load_second_pass(pack, inventory, device: str = "auto"):
    """The second pass, with the domain's words for its catalog bonus (None when it fails to
    load). load_pipeline asks for it only where the pack keeps it (`second_pass`)."""
    from rescoring.runtime import load_default_reranker

    try:
        return load_default_reranker(device=device, gazetteer=domain_gazetteer(pack, inventory))
    except Exception:
        log.exception("rescorer failed to load: finals keep the first-pass order")
        return None


def _load_nlu_and_answerer(config: PipelineConfig):
    """Parser, answerer and inventory from the factory `assistant ask` uses too."""
    from assistant.inventory.db import InventoryUnavailable

    bundle = build_assistant(
        database_url=config.database_url, nlu_device=config.nlu_device, domain=config.domain
    )
    try:
        if bundle.linker is not None:
            bundle.linker.warm_up()
    except InventoryUnavailable as error:
        # the server still starts; each final then reports db_unavailable
        log.warning("inventory unavailable at start-up: %s", error)
    return bundle.parser, bundle.answerer, bundle.inventory


@dataclass
class AssistantBundle:
    """Parser + linker + answerer over one inventory, built once and shared. A domain pack
    without the inventory (answers from templates) has no linker and no inventory."""

    parser: Parser
    linker: Linker | None
    answerer: Answerer | TemplateAnswerer
    inventory: Inventory | None

    def ask(self, text: str, store: str = "1", language: str | None = None) -> dict:
        """`assistant ask --json` shape (assistant.events.asked)."""
        from assistant import events

        nlu = self.parser.parse(text, language)
        return events.asked(text, nlu, self.answerer.answer(nlu, store))


def load_pack_parser(pack, precision: str = "auto", device: str = "auto") -> Parser:
    """A domain pack's own student, its values filled in (assistant.slots). Raises
    DomainError when the pack has not been built."""
    from assistant.domain import DomainError
    from nlu.runtime import OnnxParser

    parser = OnnxParser(pack.require_student(), precision, device=device)
    if tuple(parser.labels.intents) != pack.labels.intents:
        raise DomainError(
            f"domain {pack.name!r}: its student predicts other intents than pack.yaml "
            f"declares; rebuild it with `python -m lab.domains build {pack.name}`"
        )
    return SlotFiller(parser, pack)


def load_parser(
    inventory: Inventory | None, prefer_learned: bool = True, device: str = "auto"
) -> Parser:
    """The learned student when installed, else the gazetteer baseline."""
    if prefer_learned:
        from nlu.runtime import load_default_parser

        parser = load_default_parser(device=device)
        if parser is not None:
            log.info("parser: learned student")
            return parser
    from assistant.gazetteer import build_gazetteer
    from nlu.baseline import BaselineParser

    log.info("parser: gazetteer baseline")
    return BaselineParser(build_gazetteer(inventory))


def build_assistant(
    database_url: str | None = None,
    parser: Parser | None = None,
    prefer_learned: bool = True,
    nlu_device: str = "auto",
    domain: str = "retail",
) -> AssistantBundle:
    """Everything `assistant ask` and the server need to turn text into answers.

    Does not touch the database beyond reading the gazetteer (and falls back to the curated
    lists when it is down), so a server can start and report the database per request.
    domain: the pack; retail answers from the inventory (and from the pack's templates for
    intents it adds), another pack from its templates.
    """
    from assistant.answer import Answerer
    from assistant.domain import load_domain
    from assistant.inventory import Inventory
    from assistant.linker import Linker
    from assistant.template_answer import TemplateAnswerer

    pack = load_domain(domain)
    if not pack.is_retail:
        parser = parser or load_pack_parser(pack, device=nlu_device)
        return AssistantBundle(parser, None, TemplateAnswerer(pack), None)
    inventory = Inventory(database_url)
    if parser is None and pack.student is not None and prefer_learned:
        parser = load_pack_parser(pack, device=nlu_device)
    parser = parser or load_parser(inventory, prefer_learned, nlu_device)
    linker = Linker(inventory)
    answerer = Answerer(inventory, linker, parser)
    if pack.answers:  # intents the pack adds, answered from its templates
        answerer = TemplateAnswerer(pack, fallback=answerer)
    return AssistantBundle(parser, linker, answerer, inventory)
