"""`assistant serve --engine ray`: the first pass as a Ray Serve deployment, the websocket
front end as stateless replicas of the same server code; the later stages in the front ends
(`--stage-layout colocated`, the default) or as deployments of their own (`split`).

colocated (one handle call per final; the fastest on one machine, docs/loadtest_layouts.md):

    Frontend (N replicas)      assistant.server.AssistantServer + assistant.session, unchanged,
       |                       over RayPipeline: rescoring, NLU, linker and inventory answers
       |                       in this process (the edge tier of docs/scale_out.md)
       |  DeploymentHandle     one call per final, one per partial
       v
    FirstPass  (@serve.batch)  Whisper n-best (CTranslate2 on CPU, PyTorch on a GPU), partials

split (three handle calls per final, each stage scaled apart: --second-pass-replicas,
--understand-replicas, --stage-cpus; e.g. the small ONNX stages on cheaper nodes):

    Frontend (N replicas)      the same server over RayPipeline(SplitStages): websocket, VAD
       |-- 1 -->  FirstPass    as above
       |-- 2 -->  SecondPass   RescoreBERT (a failure or an unreachable replica: first-pass order)
       '-- 3 -->  Understand   NLU student, linker, inventory answers, in one call: its own
                               AnswerStage (timeout, circuit breaker) answers from its parses

Every replica holds an assistant.pipeline.Pipeline with only its stages loaded (Whisper and
the catalog phrases it biases toward; the rescorer; the parser and answerer), and a final goes
through Pipeline.finals / Pipeline.understand and the server's AnswerStage as in one process:
the stage code (error handling, finals-first partials, phrase biasing, the batch's parses
passed to the answer, its timeout and breaker) is the single-process server's. The
colocated layout's front end runs that answer stage itself (and reports its breaker on
/healthz); the split layout's Understand replicas each run one.
The layout of the earlier round (a replica per stage, four handle calls per final, the answer
parsing the n-best again) cost about 90 ms at one stream on 2 cores (docs/loadtest_engines.md).

A stage call whose replica died is sent again (`stage_retries`, within `call_timeout_s`):
Serve restarts the replica or routes to another one; past that the session gets a `pipeline`
error event for that utterance and goes on.

Front-end replicas on one host share the port with SO_REUSEPORT (the kernel spreads new
connections); across hosts a load balancer fronts them (docs/scale_out.md).

This module is the only one that imports ray; the default (`--engine local`) never loads it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from assistant.engine import EngineConfig
from assistant.env import VARIABLES, database_url
from assistant.pipeline import FinalRequest, FinalResult, Pipeline, PipelineConfig, _ms
from assistant.server import AssistantServer, ServerConfig

log = logging.getLogger(__name__)

APP = "retail-assistant"
# A stage call that may succeed when sent again: its replica died or is restarting, or every
# replica's queue was full for a moment.
RETRYABLE = (RayActorError, DeploymentUnavailableError, BackPressureError)
try:  # newer Serve
    from ray.serve.exceptions import ReplicaUnavailableError

    RETRYABLE = (*RETRYABLE, ReplicaUnavailableError)
except ImportError:  # pragma: no cover
    pass


class StageUnavailable(RuntimeError):
    """A model stage did not answer after its retries (all replicas down or too slow)."""


def first_pass_batch(server: ServerConfig, gpu: bool) -> tuple[int, float]:
    """(max_batch_size, batch_wait_timeout_s) for @serve.batch: the server's own --max-batch
    and --batch-wait-ms, with its default of 8 on a GPU and 1 on a CPU (measured: docs/latency.md
    against docs/latency_batch8.md, on a CPU a batch costs as much as its decodes in sequence).
    With a batch of 1 Serve never waits: the batch is full with its first request."""
    size = server.max_batch or (8 if gpu else 1)
    return size, server.batch_wait_ms / 1000.0


# -- the model stage (each replica: one process, Whisper loaded) ---------------------------


@serve.deployment(max_ongoing_requests=32, health_check_period_s=2.0)
class FirstPass:
    """Whisper n-best for finals (batched across every front end by @serve.batch) and greedy
    partials (skipped while a final batch runs, one at a time: Pipeline.partial's rule)."""

    def __init__(self, config: PipelineConfig, max_batch: int, batch_wait_s: float) -> None:
        from assistant.domain import load_domain
        from assistant.inventory import Inventory
        from assistant.pipeline import _load_phrases, load_first_pass

        _quiet_logs()
        transcriber = load_first_pass(config)
        inventory = Inventory(config.database_url)
        phrases = _load_phrases(load_domain(config.domain), inventory) if config.phrases else None
        self.pipeline = Pipeline(transcriber, config=config, phrases=phrases)
        self.final.set_max_batch_size(max_batch)
        self.final.set_batch_wait_timeout_s(batch_wait_s)
        log.info("first pass ready: %s, batch %d, wait %g s", transcriber, max_batch, batch_wait_s)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.005)
    async def final(self, requests: list[FinalRequest]) -> list[FinalResult]:
        """One nbest_batch call for every final that arrived within the batch wait."""
        return await asyncio.to_thread(self.pipeline.finals, requests, False)

    async def partial(self, audio, language: str | None) -> tuple[str, str] | None:
        return await asyncio.to_thread(self.pipeline.partial, audio, language)

    async def timed_final(self, request: FinalRequest) -> tuple[FinalResult, float, float]:
        """final() between two time.perf_counter() stamps of this replica, when the call
        reached it and when its reply left (lab.bench.ray_hops splits the round trip)."""
        arrived = time.perf_counter()
        result = await self.final(request)
        return result, arrived, time.perf_counter()

    def describe(self) -> dict[str, str | None]:
        return {"asr": self.pipeline.describe()["asr"]}

    def pid(self) -> int:
        """The replica's process id (the failover test kills it)."""
        return os.getpid()

    def ping(self, *payload) -> float:
        """time.perf_counter() when the call reached the replica (CLOCK_MONOTONIC: comparable
        across processes of one host); `payload` is only carried (lab.bench.ray_hops)."""
        return time.perf_counter()


@serve.deployment(max_ongoing_requests=64, health_check_period_s=2.0)
class SecondPass:
    """split layout: RescoreBERT over a first-pass n-best list (Pipeline.understand's
    rescoring: a failure keeps the first-pass order)."""

    def __init__(self, config: PipelineConfig) -> None:
        _quiet_logs()
        self.pipeline = load_later_stages(config, understand=False)

    async def rank(self, nbest):
        """NBest -> the same hypotheses in the rescored order."""
        result = await asyncio.to_thread(self.pipeline.understand, nbest, "", 0.0, False)
        return result.nbest

    def describe(self) -> dict[str, str | None]:
        return {"rescore": self.pipeline.describe()["rescore"]}


@serve.deployment(max_ongoing_requests=64, health_check_period_s=2.0)
class Understand:
    """split layout: the NLU student, the catalog linker and the inventory answers (the shared
    database), parse and answer in one call; the answer through an AnswerStage of its own
    (--answer-timeout-s, --db-retry-s), from the parses of every hypothesis."""

    def __init__(self, config: PipelineConfig, server: ServerConfig) -> None:
        from assistant.answer_stage import AnswerStage, CircuitBreaker

        _quiet_logs()
        self.pipeline = load_later_stages(config, rescore=False)
        answerer = self.pipeline.answerer
        self.answers = None
        if answerer is not None:  # the server's own answer stage, as _configure_batching builds it
            breaker = CircuitBreaker(open_s=server.db_retry_s)
            self.answers = AnswerStage(answerer, server.answer_timeout_s, breaker)

    async def understand(self, nbest, store: str, answer: bool = True) -> FinalResult:
        """A (rescored) NBest -> its FinalResult: parse, then when `answer` the answer."""
        result = await asyncio.to_thread(self.pipeline.understand, nbest, store, 0.0, False)
        if answer and self.answers is not None:
            result = await self.answers.complete(result, store)
        return dataclasses.replace(result, nlus=None)  # used here: not sent back

    def describe(self) -> dict[str, str | None]:
        stages = self.pipeline.describe()
        return {"nlu": stages["nlu"], "answer": stages["answer"]}

    def stores(self) -> list[dict[str, str]]:
        return self.pipeline.stores()


# -- the front end's side of the seam -------------------------------------------------------


class _Caller:
    """Calls a deployment method, blocking (from the server's worker threads), with retries
    of replica failures within one deadline."""

    def __init__(self, engine: EngineConfig) -> None:
        self.engine = engine

    def __call__(self, method, *args, timeout_s: float | None = None, retries: int | None = None):
        timeout_s = self.engine.call_timeout_s if timeout_s is None else timeout_s
        retries = self.engine.stage_retries if retries is None else retries
        deadline = time.monotonic() + timeout_s
        for attempt in range(retries + 1):
            left = deadline - time.monotonic()
            try:
                return method.remote(*args).result(timeout_s=max(0.05, left))
            except RETRYABLE as error:
                left = deadline - time.monotonic()
                if attempt == retries or left <= 0:
                    raise StageUnavailable(
                        f"{_name(method)} unavailable after {attempt + 1} tries: "
                        f"{type(error).__name__}"
                    ) from error
                log.warning(
                    "%s failed (%s); sending it again (%d of %d)",
                    _name(method),
                    type(error).__name__,
                    attempt + 1,
                    retries,
                )
                time.sleep(min(0.2 * (attempt + 1), left))
            except TimeoutError as error:  # ray's GetTimeoutError is one
                raise StageUnavailable(f"{_name(method)} took over {timeout_s:g} s") from error
        raise AssertionError("unreachable")


def _name(method) -> str:
    return getattr(method, "deployment_name", None) or str(method)


def load_later_stages(
    config: PipelineConfig, rescore: bool = True, understand: bool = True
) -> Pipeline:
    """Rescoring, parsing and answering (everything `load_pipeline` loads but Whisper and
    its phrases), for a front end; `rescore` / `understand` False leaves those out (the split
    layout's Understand / SecondPass replica)."""
    from assistant.domain import load_domain
    from assistant.inventory import Inventory
    from assistant.pipeline import _load_nlu_and_answerer, load_second_pass

    pack = load_domain(config.domain)
    parser = answerer = None
    if understand:
        parser, answerer, inventory = _load_nlu_and_answerer(config)
    else:
        inventory = Inventory(config.database_url)  # the gazetteer of the catalog bonus
    reranker = (
        load_second_pass(pack, inventory, config.rescore_device)
        if rescore and config.rescore and pack.second_pass
        else None
    )
    return Pipeline(None, reranker, parser, answerer, config, inventory)


class SplitStages:
    """The split layout's later stages, behind Pipeline.understand's signature (what
    RayPipeline calls): one SecondPass call (none without a rescorer), one Understand call
    that parses and answers. `answerer` is None: the Understand replica answers, so the
    server runs no answer stage of its own and asks finals for their answers."""

    answerer = None

    def __init__(self, second_pass, understand, engine: EngineConfig) -> None:
        self.second_pass, self.understand_stage = second_pass, understand
        self.call = _Caller(engine)
        wait = dict(timeout_s=engine.deploy_timeout_s, retries=100)
        self._stages = {
            **self.call(second_pass.describe, **wait),
            **self.call(understand.describe, **wait),
        }

    def describe(self) -> dict[str, str | None]:
        return {k: (f"{v} (ray)" if v else v) for k, v in self._stages.items()}

    def stores(self) -> list[dict[str, str]]:
        try:
            return self.call(self.understand_stage.stores)
        except Exception as error:
            log.warning("store list unavailable: %s", error)
            return []

    def understand(self, nbest, store: str, asr_ms: float = 0.0, answer: bool = True):
        """-> FinalResult; timings are the calls' round trips (queue and transfer included)."""
        timings = {"asr": asr_ms, "rescore": 0.0}
        if self._stages.get("rescore"):
            t = time.perf_counter()
            try:
                nbest = self.call(self.second_pass.rank, nbest)
            except StageUnavailable as error:  # the first-pass order is a fine answer
                log.warning("rescoring skipped: %s", error)
            timings["rescore"] = _ms(t)
        t = time.perf_counter()
        result = self.call(self.understand_stage.understand, nbest, store, answer)
        answer_ms = result.timings_ms.get("answer", 0.0)
        timings.update(nlu=_ms(t) - answer_ms, answer=answer_ms)
        timings["total"] = sum(timings.values())
        return dataclasses.replace(result, timings_ms=timings)


class RayPipeline:
    """What the server and its sessions call (`finals`, `partial`, `answerer`, `describe`,
    `stores`): the first pass on the FirstPass deployment, the later stages here (colocated)
    or on theirs (split: `later` a SplitStages). Built in the server's loading thread: it
    loads the later stages and waits for a first-pass replica to describe itself.

    later: anything with Pipeline's `understand`, `describe`, `stores` and `answerer`: the
    later stages already loaded (benchmarks), a SplitStages; None loads them from `config`.
    """

    def __init__(
        self,
        first_pass,
        engine: EngineConfig,
        config: PipelineConfig | None = None,
        later: Pipeline | None = None,
    ) -> None:
        self.engine, self.first_pass = engine, first_pass
        self.call = _Caller(engine)
        self.later = later if later is not None else load_later_stages(config or PipelineConfig())
        # colocated: the server's AnswerStage wraps it, as in-process; split: None
        self.answerer = self.later.answerer
        wait = dict(timeout_s=engine.deploy_timeout_s, retries=100)
        self._asr = self.call(first_pass.describe, **wait)["asr"]
        # The first-pass replica skips a partial while a final runs, and runs one at a time;
        # checked here first, a partial that would be skipped costs no call (nor its CPU).
        self._finals_in_flight = 0
        self._finals_lock = threading.Lock()
        self._partial_slot = threading.Lock()
        log.info("ray pipeline stages: %s", self.describe())

    def describe(self) -> dict[str, str | None]:
        return {**self.later.describe(), "asr": f"{self._asr} (ray)"}

    def stores(self) -> list[dict[str, str]]:
        return self.later.stores()

    def partial(self, audio, language: str | None) -> tuple[str, str] | None:
        if self._finals_in_flight or not self._partial_slot.acquire(blocking=False):
            return None
        try:
            return self.call(
                self.first_pass.partial,
                audio,
                language,
                timeout_s=self.engine.partial_timeout_s,
                retries=0,
            )
        finally:
            self._partial_slot.release()

    def finals(self, requests: list[FinalRequest], answer: bool = True) -> list[FinalResult]:
        """Each request's first pass on Serve (the server hands them over one at a time, and
        Serve batches them across every front end), then its later stages."""
        return [self._final(r, answer) for r in requests]

    def _final(self, request: FinalRequest, answer: bool) -> FinalResult:
        with self._finals_lock:
            self._finals_in_flight += 1
        try:
            started = time.perf_counter()
            first = self.call(self.first_pass.final, request)
            # queue, batching and transfer included: what the final paid
            asr_ms = (time.perf_counter() - started) * 1000.0
            result = self.later.understand(first.nbest, request.store, asr_ms, answer)
        finally:
            with self._finals_lock:
                self._finals_in_flight -= 1
        if first.errors:
            result = dataclasses.replace(result, errors=(*first.errors, *result.errors))
        return result


class RayFrontendServer(AssistantServer):
    """The single-process server over a RayPipeline: each final goes to Serve at once (Serve's
    @serve.batch does the batching, across every front end), on threads of its own; its answer
    stage (timeout, circuit breaker) is the server's own; replicas on one host share the port
    (SO_REUSEPORT)."""

    listen_options = {"reuse_port": True}

    def _configure_batching(self) -> None:
        super()._configure_batching()
        self._batcher.max_batch, self._batcher.max_wait_s = 1, 0.0
        self._batcher.max_in_flight = self.config.max_sessions


@serve.deployment(max_ongoing_requests=16, health_check_period_s=5.0)
class Frontend:
    """A websocket front end: the server on an event loop of its own, in this replica; with
    the handles of SecondPass and Understand (split layout) it loads no model itself."""

    def __init__(
        self,
        server: ServerConfig,
        engine: EngineConfig,
        pipeline: PipelineConfig,
        first_pass,
        second_pass=None,
        understand=None,
    ) -> None:
        _quiet_logs()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="frontend", daemon=True)
        self._thread.start()

        def load() -> RayPipeline:
            split = understand is not None
            later = SplitStages(second_pass, understand, engine) if split else None
            return RayPipeline(first_pass, engine, pipeline, later)

        self.server = RayFrontendServer(server, pipeline_factory=load)
        self._run(self.server.start(), 60)
        self._stopped = False

    def _run(self, coro, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "port": self.server.port,
            "ready": self.server.ready,
            "load_failed": self.server.load_failed,
            "sessions": len(self.server.sessions),
        }

    def __del__(self) -> None:
        """Serve's graceful shutdown: finish the utterances in flight, close with 1001."""
        if getattr(self, "_stopped", True):
            return
        self._stopped = True
        try:
            self._run(self.server.shutdown(), self.server.config.shutdown_grace_s + 5)
        except Exception:
            log.exception("front end shutdown failed")
        self._loop.call_soon_threadsafe(self._loop.stop)


def _quiet_logs() -> None:
    for name in ("assistant", "asr", "rescoring", "nlu"):
        logging.getLogger(name).setLevel(logging.INFO)


# -- the application ------------------------------------------------------------------------


def build_app(engine: EngineConfig, server: ServerConfig, pipeline: PipelineConfig, gpus: float):
    """The Serve application: Frontend(handle of FirstPass), or in the split layout
    Frontend(handles of FirstPass, SecondPass, Understand)."""
    if warning := engine.ignored_options():
        log.warning("%s", warning)
    max_batch, wait_s = first_pass_batch(server, gpus > 0)
    replicas: dict[str, Any] = {"num_replicas": engine.first_pass_replicas}
    if engine.first_pass_max_replicas > engine.first_pass_replicas:
        replicas = {
            "num_replicas": "auto",
            "autoscaling_config": {
                "min_replicas": engine.first_pass_replicas,
                "max_replicas": engine.first_pass_max_replicas,
                "target_ongoing_requests": max(2, max_batch),
            },
        }
    first = FirstPass.options(
        ray_actor_options={"num_cpus": engine.first_pass_cpus, "num_gpus": gpus},
        max_ongoing_requests=max(32, 4 * max_batch),
        **replicas,
    )
    front = Frontend.options(
        num_replicas=engine.frontend_replicas,
        ray_actor_options={"num_cpus": engine.frontend_cpus},
        graceful_shutdown_timeout_s=server.shutdown_grace_s + 10,
    )
    stages = []
    if engine.stage_layout == "split":
        actor = {"ray_actor_options": {"num_cpus": engine.stage_cpus}}
        stages = [
            SecondPass.options(num_replicas=engine.second_pass_replicas, **actor).bind(pipeline),
            Understand.options(num_replicas=engine.understand_replicas, **actor).bind(
                pipeline, server
            ),
        ]
    return front.bind(server, engine, pipeline, first.bind(pipeline, max_batch, wait_s), *stages)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host if host not in ("", "0.0.0.0", "::") else "127.0.0.1", 0))
        return s.getsockname()[1]


def _runtime_env(engine: EngineConfig) -> dict | None:
    """Joining a cluster: the runtime's own variables go to its workers (a local Ray's
    workers inherit this process's environment)."""
    if engine.ray_address is None:
        return None
    env = {k: v for k, v in os.environ.items() if k in VARIABLES}
    return {"env_vars": env} if env else None


class RayEngine:
    """Ray (local or joined), the Serve application, its front ends listening.

    with RayEngine(engine, server_config, pipeline_config) as deployed:
        deployed.url      # ws://HOST:PORT/ws

    app: the Serve application's name; engines side by side in one Ray (lab.bench.loadtest
    --interleave) each need their own.
    """

    def __init__(
        self,
        engine: EngineConfig,
        server: ServerConfig,
        pipeline: PipelineConfig,
        log_to_driver: bool = True,
        app: str = APP,
    ) -> None:
        # One inventory for every replica: the URL resolved here (RETAIL_ASSISTANT_DB), so
        # that replicas on other machines do not fall back to a SQLite file of their own.
        if pipeline.database_url is None:
            pipeline = dataclasses.replace(pipeline, database_url=database_url())
        self.engine, self.pipeline = engine, pipeline
        self.server = server
        self.log_to_driver = log_to_driver
        self.app = app
        self._started_ray = False
        self.gpus = 0.0

    @property
    def url(self) -> str:
        host = self.server.host if self.server.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"ws://{host}:{self.server.port}/ws"

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1).removesuffix("/ws")

    def start(self) -> RayEngine:
        engine = self.engine
        if not ray.is_initialized():
            local = engine.ray_address is None
            ray.init(
                address=engine.ray_address,
                num_cpus=engine.ray_cpus if local else None,
                include_dashboard=False,
                log_to_driver=self.log_to_driver,
                runtime_env=_runtime_env(engine),
                configure_logging=True,
                logging_level=logging.WARNING,
            )
            self._started_ray = local
        self.gpus = engine.first_pass_gpus
        if self.gpus is None:
            self.gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        serve.start(proxy_location="Disabled")
        if self.server.port == 0:
            self.server = dataclasses.replace(self.server, port=_free_port(self.server.host))
        app = build_app(engine, self.server, self.pipeline, self.gpus)
        serve._run(
            app,
            _blocking=False,
            name=self.app,
            route_prefix=None,
            logging_config={"enable_access_log": False},
        )
        self._wait_running()
        self._wait_healthy()
        return self

    def _wait_running(self) -> None:
        deadline = time.monotonic() + self.engine.deploy_timeout_s
        status = None
        while time.monotonic() < deadline:
            status = serve.status().applications.get(self.app)
            if status is not None and str(status.status).endswith("RUNNING"):
                return
            if status is not None and str(status.status).endswith("DEPLOY_FAILED"):
                raise RuntimeError(f"the Ray Serve deployment failed: {status.message}")
            time.sleep(0.5)
        detail = {} if status is None else {k: str(v.status) for k, v in status.deployments.items()}
        raise RuntimeError(
            f"the Ray Serve deployment was not running after {self.engine.deploy_timeout_s:g} s "
            f"({detail}); not enough CPUs/GPUs for the replicas asked for?"
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.engine.deploy_timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except urllib.error.HTTPError as error:
                last = error.read().decode(errors="replace")
                if '"error"' in last:
                    raise RuntimeError(
                        f"the front end could not reach the model stages: {last}"
                    ) from error
            except OSError as error:
                last = str(error)
            time.sleep(0.5)
        raise RuntimeError(f"the front end was not healthy in time: {last}")

    def handle(self, deployment: str):
        """A handle to one deployment of the application (tests, benchmarks)."""
        return serve.get_deployment_handle(deployment, app_name=self.app)

    def shutdown(self) -> None:
        try:
            if ray.is_initialized():  # not when an engine beside it stopped the local Ray
                serve.delete(self.app)
        finally:
            if self._started_ray:
                serve.shutdown()
                ray.shutdown()

    def __enter__(self) -> RayEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()


def serve_forever(engine: EngineConfig, server: ServerConfig, pipeline: PipelineConfig) -> None:
    """`assistant serve --engine ray`: deploy, say where, run until SIGTERM/SIGINT, tear down."""
    from assistant.server import wait_for_stop_signal

    deployed = RayEngine(engine, server, pipeline)
    where = engine.ray_address or "a local Ray"
    print(f"assistant: deploying on {where} (models load in the replicas)...", file=sys.stderr)
    deployed.start()
    print(
        f"assistant: serving {deployed.http_url}/ (websocket /ws) on Ray Serve: "
        f"{engine.frontend_replicas} front end(s), first pass x{engine.first_pass_replicas}"
        f"{' on GPU' if deployed.gpus else ''}"
        + (
            f", second pass x{engine.second_pass_replicas}, NLU/answers x"
            f"{engine.understand_replicas}"
            if engine.stage_layout == "split"
            else ", later stages in the front ends"
        ),
        file=sys.stderr,
    )
    try:
        asyncio.run(wait_for_stop_signal())
        print("assistant: shutting down (finishing utterances in flight)", file=sys.stderr)
    finally:
        deployed.shutdown()


def describe(deployed: RayEngine) -> str:
    """The /healthz body of a front end (for the log)."""
    with urllib.request.urlopen(f"{deployed.http_url}/healthz", timeout=5) as reply:
        return json.dumps(json.loads(reply.read()))
