"""Lint docker/Dockerfile.*: no Docker engine is needed, and none builds them in CI.

The images are thin wrappers over the Makefile's install, so these tests hold them to it:
pinned base images, the Makefile's torch pins in one pip call, extras that pyproject.toml
defines, COPY sources that exist, and a ``segprune`` entry point whose subcommands exist.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, with comments dropped and continuation lines joined."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name} ends inside a continued line"
    return out


def argv(args: str) -> list[str]:
    """Exec form (a JSON array) or shell form of CMD/ENTRYPOINT/COPY arguments."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def makefile_torch_pins() -> set[str]:
    match = re.search(r"^TORCH_PINS\s*:?=\s*(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile has no TORCH_PINS line"
    return set(match.group(1).split())


def optional_dependencies() -> dict[str, list[str]]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"]


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned_by_tag(dockerfile):
    stages: set[str] = set()
    froms = [args for keyword, args in instructions(dockerfile) if keyword == "FROM"]
    assert froms, f"{dockerfile.name} has no FROM"
    for args in froms:
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2])
        if image in stages:
            continue
        name = image.split("@")[0]
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        assert tag, f"{dockerfile.name}: FROM {image} has no tag; pin one (e.g. python:3.11-slim)"
        assert tag != "latest", f"{dockerfile.name}: FROM {image} uses latest; pin a release tag"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entry_point_is_segprune_with_real_subcommands(dockerfile):
    from segprune.cli.main import SUBCOMMANDS  # read now: subcommands are still being added

    parts = dict(instructions(dockerfile))
    entry = argv(parts.get("ENTRYPOINT", "[]"))
    assert entry[:1] == ["segprune"], f"{dockerfile.name}: ENTRYPOINT should be [\"segprune\"], got {entry}"
    command = entry + argv(parts.get("CMD", "[]"))
    positional = [word for word in command[1:] if not word.startswith("-")]
    if positional:
        assert positional[0] in SUBCOMMANDS, f"{dockerfile.name} runs `segprune {positional[0]}`, not one of {SUBCOMMANDS}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile):
    copies = [argv(args) for keyword, args in instructions(dockerfile) if keyword in ("COPY", "ADD")]
    assert copies, f"{dockerfile.name} copies nothing into the image"
    for words in copies:
        if any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words if not w.startswith("--")][:-1]:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source} is not in the repository"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_pins_match_the_makefile_in_one_pip_call(dockerfile):
    pins = makefile_torch_pins()
    runs = [args for keyword, args in instructions(dockerfile) if keyword == "RUN"]
    torch_runs = [args for args in runs if re.search(r"\btorch(vision)?\b", args)]
    assert len(torch_runs) == 1, f"{dockerfile.name} should install torch in one RUN, found {len(torch_runs)}"
    words = set(shlex.split(torch_runs[0]))
    torch_words = {w for w in words if re.match(r"torch(vision)?\b", w)}
    assert torch_words == pins, f"{dockerfile.name} installs {sorted(torch_words)}; Makefile pins {sorted(pins)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_extras_exist_in_pyproject(dockerfile):
    known = optional_dependencies()
    named = [extra.strip() for args in (a for k, a in instructions(dockerfile) if k == "RUN")
             for group in re.findall(r"\.\[([^\]]+)\]", args) for extra in group.split(",")]
    assert named, f"{dockerfile.name} installs segprune without extras"
    for extra in named:
        assert extra in known, f"{dockerfile.name} installs .[{extra}], which pyproject.toml does not define"


def test_gpu_image_swaps_onnxruntime_for_onnxruntime_gpu():
    runs = " && ".join(a for k, a in instructions(REPO / "docker" / "Dockerfile.gpu") if k == "RUN")
    assert re.search(r"\.\[[^\]]*\btrt\b", runs), "the GPU image must install the trt extra"
    uninstall = runs.find("pip uninstall -y onnxruntime")
    install = runs.find("onnxruntime-gpu")
    assert 0 <= uninstall < install, "uninstall onnxruntime before installing onnxruntime-gpu (they share files)"
    cpu_pin = next(d for d in optional_dependencies()["export"] if re.match(r"onnxruntime\b", d))
    assert f"onnxruntime-gpu{cpu_pin[len('onnxruntime'):]}" in runs, f"pin onnxruntime-gpu like {cpu_pin}"


def test_cpu_image_has_no_gpu_packages():
    runs = " ".join(a for k, a in instructions(REPO / "docker" / "Dockerfile.cpu") if k == "RUN")
    assert "onnxruntime-gpu" not in runs and not re.search(r"\.\[[^\]]*\btrt\b", runs)
