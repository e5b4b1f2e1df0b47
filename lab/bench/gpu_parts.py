"""Carry a folder that is too large for one device call: byte-exact pieces, each sha256-checked.

A lent device takes at most 64 MiB a call, the working tree included (about 30 MiB here), so
the converted Whisper base (139 MiB of float16 safetensors, asr.torch_convert) travels in
parts over consecutive calls. Unlike lab.rescoring.gpu_decode's pack (int8 rows) nothing is
rounded: the file is cut into byte ranges and joined back, and the sha256 of every piece and
of every whole file is checked there.

    python -m lab.bench.gpu_parts split --src build/whisper-base-torch --out .gpu/suite \
        --extra .gpu/inventory.sqlite.gz --with .whl              # here: part1..partN + manifest
    python -m lab.bench.gpu_parts stash --src .gpu/suite --dst /tmp/gpu_suite/parts   # there
    python -m lab.bench.gpu_parts join --src /tmp/gpu_suite/parts --dst /tmp/gpu_suite/model

Layout: OUT/partK/ holds its pieces and a copy of manifest.json (every call can check what it
carries); part1 also holds the small files whole (the model's side files and --extra files).
`split` sizes each call (tree + part + --with folders for call 1) and fails here, not there,
when one would pass --call-mib.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

from lab import REPO

log = logging.getLogger(__name__)

MIB = 2**20
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def tree_bytes(repo: Path) -> int:
    """Bytes of what a device call sends besides `carry`: tracked files and untracked ones
    git does not ignore."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return sum(
        (repo / n.decode()).stat().st_size for n in names if n and (repo / n.decode()).is_file()
    )


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def split(
    src: Path,
    out: Path,
    extra: list[Path],
    first_mib: float,
    part_mib: float,
    with_first: list[Path],
    call_mib: float,
    repo: Path,
) -> dict:
    """Cut src's largest file into pieces (part1: first_mib, the others part_mib each) and put
    its other files and `extra` whole into part1; write the manifest into every part."""
    files = sorted(f for f in src.iterdir() if f.is_file())
    big = max(files, key=lambda f: f.stat().st_size)
    if out.exists():
        shutil.rmtree(out)
    manifest: dict = {"files": {}, "pieces": []}
    for path in [*files, *extra]:
        manifest["files"][path.name] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    with big.open("rb") as handle:
        offset, k = 0, 1
        while chunk := handle.read(int((first_mib if k == 1 else part_mib) * MIB)):
            name = f"{big.name}.{k:03d}"
            (out / f"part{k}").mkdir(parents=True)
            (out / f"part{k}" / name).write_bytes(chunk)
            manifest["pieces"].append(
                {
                    "part": f"part{k}",
                    "name": name,
                    "of": big.name,
                    "offset": offset,
                    "bytes": len(chunk),
                    "sha256": hashlib.sha256(chunk).hexdigest(),
                }
            )
            offset += len(chunk)
            k += 1
    for path in [f for f in files if f != big] + extra:
        shutil.copy(path, out / "part1" / path.name)
        entry = manifest["files"][path.name]
        manifest["pieces"].append(
            {"part": "part1", "name": path.name, "of": path.name, "offset": 0, **entry}
        )
    parts = sorted({p["part"] for p in manifest["pieces"]}, key=lambda p: int(p[4:]))
    tree = tree_bytes(repo)
    calls = []
    for part in parts:
        (out / part / MANIFEST).write_text(json.dumps(manifest, indent=1))
        size = tree + folder_bytes(out / part)
        if part == "part1":
            size += sum(folder_bytes(p) if p.is_dir() else p.stat().st_size for p in with_first)
        calls.append({"part": part, "call_mib": round(size / MIB, 1)})
    manifest["calls"] = calls
    too_big = [c for c in calls if c["call_mib"] > call_mib]
    if too_big:
        raise SystemExit(f"calls over {call_mib} MiB: {too_big}; lower --part-mib / --first-mib")
    return manifest


def stash(src: Path, dst: Path) -> list[str]:
    """Check each piece carried under src (its parts' folders) and copy it to dst."""
    dst.mkdir(parents=True, exist_ok=True)
    done = []
    for manifest_file in sorted(src.glob(f"part*/{MANIFEST}")):
        manifest = json.loads(manifest_file.read_text())
        shutil.copy(manifest_file, dst / MANIFEST)
        for piece in manifest["pieces"]:
            path = manifest_file.parent / piece["name"]
            if piece["part"] != manifest_file.parent.name:
                continue
            if sha256(path) != piece["sha256"]:
                raise SystemExit(f"{path}: sha256 differs from the manifest: carried damaged")
            shutil.copy(path, dst / piece["name"])
            done.append(piece["name"])
    if not done:
        raise SystemExit(f"no part under {src}: name .gpu/suite/partK in `carry`")
    log.info("stashed %s in %s", ", ".join(done), dst)
    return done


def join(src: Path, dst: Path) -> None:
    """Rebuild every file of the manifest in dst from the stashed pieces; check sha256."""
    manifest = json.loads((src / MANIFEST).read_text())
    missing = [p["name"] for p in manifest["pieces"] if not (src / p["name"]).is_file()]
    if missing:
        raise SystemExit(f"pieces not stashed yet: {missing} (a call per part, machine warm)")
    dst.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest["files"].items():
        pieces = sorted(
            (p for p in manifest["pieces"] if p["of"] == name), key=lambda p: p["offset"]
        )
        with (dst / name).open("wb") as out:
            for piece in pieces:
                with (src / piece["name"]).open("rb") as handle:
                    shutil.copyfileobj(handle, out)
        if sha256(dst / name) != entry["sha256"]:
            raise SystemExit(f"{dst / name}: sha256 of the joined file differs from the manifest")
    log.info("joined %d files into %s (sha256 checked)", len(manifest["files"]), dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("split", help="here: the folder -> OUT/part1..N with a manifest")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--extra", type=Path, nargs="*", default=[], help="more files, whole, in part1")
    p.add_argument("--first-mib", type=float, default=18.0, help="piece size in part1")
    p.add_argument("--part-mib", type=float, default=30.5, help="piece size in the others")
    p.add_argument("--with", dest="with_first", type=Path, nargs="*", default=[],
                   help="what call 1 also carries (e.g. .whl), for the size check")  # fmt: skip
    p.add_argument("--call-mib", type=float, default=62.0, help="most one call may carry")
    p = sub.add_parser("stash", help="there: check the carried part(s), copy them to DST")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--dst", type=Path, required=True)
    p = sub.add_parser("join", help="there: every part stashed -> the files in DST")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--dst", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "split":
        manifest = split(
            args.src,
            args.out,
            args.extra,
            args.first_mib,
            args.part_mib,
            args.with_first,
            args.call_mib,
            REPO,
        )
        print(json.dumps(manifest["calls"]))
    elif args.cmd == "stash":
        stash(args.src, args.dst)
    else:
        join(args.src, args.dst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
