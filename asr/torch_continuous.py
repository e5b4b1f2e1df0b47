"""Continuous batching for the PyTorch first pass: finals join the running beam search.

`ContinuousDecoder(transcriber)` owns one worker thread that runs while anything is in
flight. At each step boundary it encodes the clips submitted since the last one (one
encoder batch), adds them to the beam search, and advances every utterance by one token
(asr.torch_beam.ContinuousBeamSearch, one engine per beam width). An utterance's NBest is
delivered in the step where it finishes, whatever the others still have to decode.

The widen-beam policy of `TorchTranscriber` is kept: an utterance whose merged list holds
fewer than n distinct readings is added again, with the same encoder output, to the engine
of twice the beam width (up to 32), and answered when that decode finishes. The readings
equal those of `TorchTranscriber.nbest` for the same clip (tests/asr/test_torch_continuous.py).

`submit(audio, language) -> concurrent.futures.Future[NBest]`; `nbest` and `nbest_batch`
block on those futures, so the decoder can stand in for the transcriber in
assistant.pipeline: every caller thread's clips then share one running batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from asr.contract import (
    SAMPLE_RATE,
    Backend,
    DecodeOptions,
    PhraseSelector,
    check_language,
    decode_with_phrases,
)
from asr.nbest import NBest
from asr.torch_backend import TorchTranscriber
from asr.torch_beam import BeamResult, ContinuousBeamSearch

log = logging.getLogger(__name__)


@dataclass
class DecoderStats:
    """Counters of one decoder's life, for benchmarks and logs.

    steps: decoder steps run (one per engine with work, per loop).
    utterance_steps: sum over steps of the utterances in that step's batch.
    max_batch: most utterances in one step; encoder_batches: encoder calls;
    widened: re-decodes with a wider beam.
    """

    steps: int = 0
    utterance_steps: int = 0
    max_batch: int = 0
    encoder_batches: int = 0
    widened: int = 0

    @property
    def mean_batch(self) -> float:
        return self.utterance_steps / self.steps if self.steps else 0.0


@dataclass
class _Job:
    """One submitted clip, from submission to its NBest."""

    future: Future
    audio: np.ndarray | None  # dropped once encoded
    language: str  # "en", "es" or "auto"
    options: DecodeOptions  # resolved against the transcriber's config at submission
    bias: list[int]
    duration_s: float
    submitted: float = field(default_factory=time.perf_counter)
    chosen: tuple[str, float] = ("", 0.0)  # (language, probability) once encoded
    encoder_out: object = None  # torch.Tensor [1500, d_model] once encoded
    prompt: list[int] = field(default_factory=list)
    encode_s: float = 0.0
    batch_at_join: int = 0


class ContinuousDecoder(Backend):
    """Whisper n-best with continuous batching over a `TorchTranscriber` (an
    asr.contract.Transcriber).

    max_active: utterances decoded at once (default: the transcriber's batch_size); more
    wait in the queue. max_encode_batch: clips encoded together at one step boundary
    (default max_active). Thread-safe: any thread may submit.
    """

    def __init__(
        self,
        transcriber: TorchTranscriber,
        max_active: int | None = None,
        max_encode_batch: int | None = None,
    ) -> None:
        self.transcriber = transcriber
        self.max_active = max_active or transcriber.config.batch_size
        self.max_encode_batch = max_encode_batch or self.max_active
        if self.max_active < 1 or self.max_encode_batch < 1:
            raise ValueError("max_active and max_encode_batch must be >= 1")
        self.stats = DecoderStats()
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._closed = False
        self._thread: threading.Thread | None = None
        # Owned by the worker thread only:
        self._engines: dict[int, ContinuousBeamSearch] = {}
        self._jobs: dict[tuple[int, int], _Job] = {}  # (beam width, handle) -> job

    @staticmethod
    def supports(transcriber) -> bool:
        """Whether `transcriber` can be wrapped (the PyTorch first pass)."""
        return isinstance(transcriber, TorchTranscriber)

    # The transcriber's face, for callers that look (assistant.server, pipeline.describe).
    @property
    def config(self):
        return self.transcriber.config

    @property
    def device(self):
        return self.transcriber.device

    # -- submitting ----------------------------------------------------------------------

    def submit(
        self,
        audio: np.ndarray,
        language: str | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        *,
        options: DecodeOptions | None = None,
    ) -> Future:
        """Queue one clip -> Future[NBest] (arguments as `TorchTranscriber.nbest`, without
        phrase selectors).

        Bad arguments raise here (ValueError), not in the future.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            raise ValueError("empty audio: nothing to transcribe")
        options = self.decode_options(options, nbest, bias_terms)
        job = _Job(
            future=Future(),
            audio=audio,
            language=check_language(language, self.transcriber.config),
            options=options,
            bias=self.transcriber.bias_ids(options.bias_terms),
            duration_s=len(audio) / SAMPLE_RATE,
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the decoder is closed")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="continuous-decoder", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return job.future

    def decode_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: list[str | None],
        selectors: list[PhraseSelector | None],
        options: DecodeOptions,
    ) -> list[NBest]:
        """`nbest_batch` (asr.contract.Backend), its arguments checked: each clip joins the
        running search on its own (blocks until all are decoded)."""
        if options.bias_terms is None and any(selectors):
            return decode_with_phrases(self, audios, languages, selectors, options)
        futures = [
            self.submit(audio, lang, options=options)
            for audio, lang in zip(audios, languages, strict=True)
        ]
        return [f.result() for f in futures]

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the worker after its current step; clips still in flight fail."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> ContinuousDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._queue and not self._jobs:
                    self._cond.wait()
                if self._closed:
                    break
                room = min(self.max_active - len(self._jobs), self.max_encode_batch)
                new = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
            try:
                self._admit(new)
                self._step()
            except Exception as error:  # never leave a caller waiting forever
                log.exception("continuous decoder failed; failing the clips in flight")
                self._fail_all(error)
        self._fail_all(RuntimeError("the decoder was closed"))

    def _admit(self, new: list[_Job]) -> None:
        """Encode the new clips in one batch and add them to the search."""
        import torch

        jobs = [j for j in new if j.future.set_running_or_notify_cancel()]  # callers gone
        if not jobs:
            return
        try:
            with torch.inference_mode():
                encoder_out, chosen, encode_s = self.transcriber.encode(
                    [j.audio for j in jobs], [j.language for j in jobs]
                )
        except Exception as error:  # e.g. out of memory: these clips fail, the rest go on
            log.exception("encoding %d clip(s) failed", len(jobs))
            for job in jobs:
                job.future.set_exception(error)
            return
        self.stats.encoder_batches += 1
        for i, job in enumerate(jobs):
            job.audio, job.encoder_out, job.chosen = None, encoder_out[i], chosen[i]
            job.encode_s = encode_s
            job.prompt = self.transcriber.prompt(job.chosen[0], job.bias)
            self._start(job, job.options.first_beam)

    def _start(self, job: _Job, beam: int) -> None:
        engine = self._engines.get(beam)
        if engine is None:
            engine = ContinuousBeamSearch(
                self.transcriber.model, self.transcriber.beam_options(beam)
            )
            self._engines[beam] = engine
        job.batch_at_join = engine.active + 1
        self._jobs[(beam, engine.add(job.encoder_out, job.prompt))] = job

    def _step(self) -> None:
        """One decoder step of every engine with work; deliver what finished."""
        for beam, engine in list(self._engines.items()):
            if not engine.active:
                continue
            batch = engine.active
            try:
                finished = engine.step()
            except Exception as error:  # this width's utterances fail, the others go on
                log.exception("beam search failed (beam %d)", beam)
                for key in [key for key in self._jobs if key[0] == beam]:
                    self._jobs.pop(key).future.set_exception(error)
                del self._engines[beam]
                continue
            self.stats.steps += 1
            self.stats.utterance_steps += batch
            self.stats.max_batch = max(self.stats.max_batch, batch)
            for handle, results in finished:
                self._finish(self._jobs.pop((beam, handle)), beam, results)

    def _finish(self, job: _Job, beam: int, results: list[BeamResult]) -> None:
        readings = self.transcriber.readings(results, job.chosen[0])
        n = job.options.nbest
        if len(readings) < n and (wider := job.options.wider(beam)) is not None:
            # Too few distinct readings: decode again with a wider beam, as nbest_batch does.
            self.stats.widened += 1
            self._start(job, wider)
            return
        job.encoder_out = None
        extra = {
            "backend": "torch",
            "continuous": True,
            "encode_s": job.encode_s,
            "asr_s": time.perf_counter() - job.submitted,  # queueing included
            "batch": job.batch_at_join,
            "beam": beam,
        }
        job.future.set_result(
            TorchTranscriber.to_nbest(readings, n, job.chosen, job.duration_s, extra)
        )

    def _fail_all(self, error: Exception) -> None:
        """Fail every clip in flight (and, once closed, every queued one)."""
        jobs = list(self._jobs.values())
        self._jobs.clear()
        self._engines.clear()
        with self._cond:
            if self._closed:
                jobs += list(self._queue)
                self._queue.clear()
        for job in jobs:
            future = job.future
            if not future.done() and (future.running() or future.set_running_or_notify_cancel()):
                future.set_exception(error)
