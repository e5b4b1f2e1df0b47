"""Which engine runs the models behind `assistant serve`, and the Ray Serve knobs.

`local` (the default) is the single-process server: one AssistantServer holding every model.
`ray` runs the first pass as a Ray Serve deployment (assistant.ray_engine, which alone imports
ray) behind websocket front-end replicas that run the same server code; the later stages
(rescoring, NLU, answers) run in the front ends (`stage_layout` "colocated", the default) or as
deployments of their own ("split"); see docs/scale_out.md.
This module imports nothing of Ray, so the default server never does.

Every field is an option of `assistant serve` (assistant.options): `--engine ray`,
`--ray-address auto`, `--first-pass-replicas 2`, ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ENGINES = ("local", "ray")
# colocated: rescoring, NLU and answers in the front ends (one deployment call per final);
# split: as the SecondPass and Understand deployments (three calls per final)
STAGE_LAYOUTS = ("colocated", "split")
# the options of the split layout's stage deployments
SPLIT_OPTIONS = ("second_pass_replicas", "understand_replicas", "stage_cpus")


@dataclass(frozen=True)
class EngineConfig:
    """The engine, and for `ray` the deployments' replicas, resources and call policy.

    Defaults fit one 2-core machine: 1 logical CPU for the first pass, half of one for each
    front end (websocket, VAD, rescoring, NLU, answers; 2 front ends fit), or in the split
    layout one front end and a quarter CPU for each of the SecondPass and Understand replicas.
    The first pass batches with Serve's @serve.batch using the server's own --max-batch and
    --batch-wait-ms (None: 8 on a GPU, 1 on a CPU, where a batch costs as much as its decodes
    in sequence: docs/latency.md against docs/latency_batch8.md).
    """

    engine: str = "local"
    # Join this running Ray cluster ("auto", "HOST:6379", "ray://HOST:10001"); None: start a
    # local Ray on this machine (and stop it at exit).
    ray_address: str | None = None
    ray_cpus: int | None = None  # local Ray only: logical CPUs it offers (None: the machine's)
    # websocket front ends with the later stages (stateless; SO_REUSEPORT on one host)
    frontend_replicas: int = 1
    frontend_cpus: float = 0.5
    first_pass_replicas: int = 1  # Whisper replicas (autoscaled up to first_pass_max_replicas)
    first_pass_max_replicas: int = 0  # > first_pass_replicas: Serve autoscaling on queue length
    first_pass_cpus: float = 1.0
    first_pass_gpus: float | None = None  # None: 1 per replica when the cluster has a GPU
    # Where rescoring and NLU + answers run: "colocated" in the front ends (one deployment
    # call per final, the fastest on one machine: docs/loadtest_layouts.md) or "split", as the
    # SecondPass and Understand deployments, scaled apart by the three fields below (e.g. on
    # cheaper nodes of a cluster than the first pass's).
    stage_layout: str = "colocated"
    second_pass_replicas: int = 1  # split: RescoreBERT replicas
    understand_replicas: int = 1  # split: NLU student + linker + inventory answer replicas
    stage_cpus: float = 0.25  # split: CPUs per second-pass and per NLU/answer replica
    # A stage call that fails because its replica died is sent again (to another replica, or
    # to the one Serve restarts) this many times, within call_timeout_s of the first try.
    stage_retries: int = 1
    call_timeout_s: float = 60.0
    partial_timeout_s: float = 5.0  # partials are a courtesy: never retried
    deploy_timeout_s: float = 600.0  # replicas scheduled, models loaded, front ends listening

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.stage_layout not in STAGE_LAYOUTS:
            raise ValueError(
                f"stage_layout must be one of {', '.join(STAGE_LAYOUTS)}, got {self.stage_layout!r}"
            )
        for name in (
            "frontend_replicas",
            "first_pass_replicas",
            "second_pass_replicas",
            "understand_replicas",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.first_pass_max_replicas and self.first_pass_max_replicas < self.first_pass_replicas:
            raise ValueError("first_pass_max_replicas must be 0 or at least first_pass_replicas")
        for name in ("frontend_cpus", "first_pass_cpus", "stage_cpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.first_pass_gpus is not None and self.first_pass_gpus < 0:
            raise ValueError("first_pass_gpus must be >= 0")
        if self.ray_cpus is not None and self.ray_cpus < 1:
            raise ValueError("ray_cpus must be at least 1")
        if self.stage_retries < 0:
            raise ValueError("stage_retries must be >= 0")
        for name in ("call_timeout_s", "partial_timeout_s", "deploy_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")

    def ignored_options(self) -> str | None:
        """What to warn about: the split layout's options set (to other than their defaults)
        in the colocated layout, where they do nothing; None when there is nothing to say.
        A warning, not an error: scripts that passed them before the layouts were choosable
        still run."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        ignored = [
            f"--{name.replace('_', '-')} {getattr(self, name):g}"
            for name in SPLIT_OPTIONS
            if getattr(self, name) != defaults[name]
        ]
        if self.stage_layout == "split" or not ignored:
            return None
        return (
            f"{', '.join(ignored)}: no effect; they apply only with --stage-layout split "
            "(colocated: rescoring, NLU and answers run in the front ends, "
            "--frontend-replicas, --frontend-cpus)"
        )
