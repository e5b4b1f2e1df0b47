"""The Ray engine's settings without starting Ray: `--stage-layout` and the split layout's
options (assistant.engine), the warning when they would do nothing, and the Serve application
each layout builds (assistant.ray_engine.build_app binds deployments; nothing is deployed)."""

from __future__ import annotations

import logging

import pytest

from assistant.engine import EngineConfig
from assistant.errors import UserError


def _engine(*argv: str) -> EngineConfig:
    from assistant.cli import build_parser
    from assistant.commands.serve import build_engine

    args = ["serve", *argv]
    return build_engine(build_parser(args).parse_args(args))


def test_the_default_layout_is_colocated():
    assert EngineConfig().stage_layout == "colocated"
    assert _engine() == EngineConfig()
    assert _engine("--engine", "ray").stage_layout == "colocated"


def test_split_and_its_stage_options_parse():
    engine = _engine(
        "--engine", "ray", "--stage-layout", "split", "--second-pass-replicas", "2",
        "--understand-replicas", "3", "--stage-cpus", "0.5",
    )  # fmt: skip
    assert engine.stage_layout == "split"
    assert (engine.second_pass_replicas, engine.understand_replicas) == (2, 3)
    assert engine.stage_cpus == 0.5
    assert engine.ignored_options() is None


def test_a_bad_layout_is_refused():
    with pytest.raises(SystemExit) as exit_:  # argparse: not one of the choices
        _engine("--stage-layout", "spread")
    assert exit_.value.code == 2
    with pytest.raises(ValueError, match="stage_layout must be one of colocated, split"):
        EngineConfig(stage_layout="spread")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--understand-replicas", "0"), "--understand-replicas must be at least 1"),
        (("--second-pass-replicas", "0"), "--second-pass-replicas must be at least 1"),
        (("--stage-cpus", "-1"), "--stage-cpus must be >= 0"),
    ],
)
def test_bad_stage_options_name_the_option(argv, message):
    with pytest.raises(UserError, match=message):
        _engine("--stage-layout", "split", *argv)


def test_colocated_says_the_split_options_do_nothing():
    assert EngineConfig(engine="ray").ignored_options() is None
    warning = _engine("--engine", "ray", "--second-pass-replicas", "2", "--stage-cpus", "1")
    text = warning.ignored_options()
    assert text is not None
    assert "--second-pass-replicas 2" in text and "--stage-cpus 1" in text
    assert "--understand-replicas" not in text  # left at its default
    assert "only with --stage-layout split" in text


def _app_graph(app) -> dict[str, object]:
    """{deployment name: Deployment} of a bound Serve application (Frontend and the
    applications bound into its arguments)."""
    found, todo = {}, [app]
    while todo:
        deployment = todo.pop()._bound_deployment
        found[deployment.name] = deployment
        todo += [a for a in deployment.init_args if hasattr(a, "_bound_deployment")]
    return found


@pytest.fixture
def build_app():
    pytest.importorskip("ray.serve", reason="pip install '.[ray]'")
    from assistant.pipeline import PipelineConfig
    from assistant.ray_engine import build_app
    from assistant.server import ServerConfig

    return lambda engine: build_app(engine, ServerConfig(port=0), PipelineConfig(), 0.0)


def test_colocated_deploys_the_first_pass_alone(build_app, caplog):
    with caplog.at_level(logging.WARNING, logger="assistant.ray_engine"):
        graph = _app_graph(build_app(EngineConfig(engine="ray", understand_replicas=2)))
    assert set(graph) == {"Frontend", "FirstPass"}
    assert "--understand-replicas 2: no effect" in caplog.text


def test_split_deploys_the_stages_with_their_replicas_and_cpus(build_app, caplog):
    engine = EngineConfig(
        engine="ray", stage_layout="split", second_pass_replicas=2, understand_replicas=3,
        stage_cpus=0.5,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="assistant.ray_engine"):
        graph = _app_graph(build_app(engine))
    assert set(graph) == {"Frontend", "FirstPass", "SecondPass", "Understand"}
    assert graph["SecondPass"].num_replicas == 2 and graph["Understand"].num_replicas == 3
    for name in ("SecondPass", "Understand"):
        assert graph[name].ray_actor_options["num_cpus"] == 0.5
    assert graph["FirstPass"].ray_actor_options["num_cpus"] == engine.first_pass_cpus
    assert "no effect" not in caplog.text
