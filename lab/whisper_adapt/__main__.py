"""`python -m lab.whisper_adapt {data,train,export,evaluate}`: see the package docstring."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys


def _add_fields(parser: argparse.ArgumentParser, cls) -> None:
    """One kebab-case flag per dataclass field, the field's default as the flag's."""
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            parser.add_argument(
                flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default
            )
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", type=type(default[0]), default=default)
        elif default is None:
            parser.add_argument(flag, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)


def _config(cls, args: argparse.Namespace):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def main(argv: list[str] | None = None) -> int:
    import importlib

    argv = sys.argv[1:] if argv is None else argv
    # Import only the stage asked for: data preparation needs no torch.
    wanted = {"data": "data", "train": "train", "evaluate": "evaluate"}
    modules = {
        name: importlib.import_module(f"lab.whisper_adapt.{name}")
        if (argv[:1] == [name] or not argv or argv[0].startswith("-"))
        else None
        for name in wanted
    }
    data, train, evaluate = modules["data"], modules["train"], modules["evaluate"]

    parser = argparse.ArgumentParser(prog="python -m lab.whisper_adapt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="synthesize, degrade and encode the train and dev clips")
    d.add_argument("--splits", nargs="+", default=["dev", "train"])
    t = sub.add_parser("train", help="train the decoder LoRA on the encoded clips")
    e = sub.add_parser("evaluate", help="WER base vs adapted: dev set and real speech")
    for parser_, module, cls in (
        (d, data, "DataConfig"),
        (t, train, "TrainConfig"),
        (e, evaluate, "EvalConfig"),
    ):
        if module is not None:
            _add_fields(parser_, getattr(module, cls))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "data":
        cfg = _config(data.DataConfig, args)
        for split in args.splits:
            data.build_split(cfg, split)
    elif args.command == "train":
        train.train(_config(train.TrainConfig, args))
    else:
        evaluate.run(_config(evaluate.EvalConfig, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
