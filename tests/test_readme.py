"""The README's commands run as written after `make demo` (smoke test, marked slow).

`make demo` is replayed from the Makefile's own recipe (34 min measured on a heavily shared 2-core
loaded machine), then every `svg ...` / `python ...` line of
the README's bash blocks runs in README order in a scratch directory. To take minutes rather than
hours, sizes are shrunk on the way (SHRINK: 2 training steps, batch 4, 2 samples, 4 test videos,
small trajectory figures); paths, options and their order are the README's. Lines that need what a
test cannot have (KTH/BAIR downloads, your own videos, several GPUs, a shell to install completion
into) are listed in NOT_RUN with the reason; a README line in neither group fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_RUN = {  # substring of a command -> why the test cannot run it
    "pusht": "the Push-T chain (simulation, minutes) runs in test_pusht.py, test_actions.py and test_control.py",
    "RAW_KTH_DIR": "needs the KTH videos",
    "data/kth": "needs the converted KTH videos",
    "softmotion30_44k": "needs the BAIR TFRecords",
    "folder:MY_VIDEOS": "needs your videos (the folder preset is tested in test_cli.py)",
    "--nproc": "needs 4 GPUs",
    "torchrun": "needs 4 GPUs",
    "--install-completion": "writes into the user's shell start-up files",
    "pip install": "installs packages (tested in test_install.py)",
}
SHRINK = [  # (pattern, replacement): the README's sizes -> test sizes
    (r"--resume --steps \d+", "--resume --steps 4"), (r"(?<!--resume )--steps \d+", "--steps 2"), (r"--samples \d+", "--samples 2"), (r"--count \d+", "--count 4"),
    (r"--batch-size [\d,]+", "--batch-size 1"), (r"--sample-every \d+", "--sample-every 1"),
    (r"--checkpoint-every \d+", "--checkpoint-every 1"), (r"--horizon \d+", "--horizon 6"),
]
APPEND = {  # command -> options added for speed
    "svg train": "--batch-size 4",
    "svg eval-trajectories": "--sigma-trajectories 1 --sigma-videos 2 --sigma-length 12 --velocity-trajectories 1 "
                             "--velocity-digits 2 --velocity-samples 2",
    "svg bench": "--steps 2 --warmup 0 --threads 1",
    "svg eval ": "--max-videos 2",
}


def shell_lines(text: str) -> list[str]:
    """Command lines of the ```bash blocks, continuation lines joined, comments dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def demo_commands() -> list[str]:
    """The `make demo` recipe's svg commands, with the Makefile's variables filled in."""
    recipe = (REPO / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    recipe = recipe.replace("\\\n", " ")
    commands = []
    for line in recipe.splitlines():
        line = line.strip()
        if line.startswith("$(BIN)/svg"):
            line = line.replace("$(DEMO_RUN)", "runs/demo").replace("$(DEMO_STEPS)", "2")
            line = re.sub(r"\$\(if \$\(wildcard [^)]*\),([^,]*),\)", "", line)  # a fresh run: no --resume
            line = line.replace("$(BIN)/svg", "svg")
            commands.append(line)
    return commands


def shrink(command: str) -> str:
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement, command)
    for prefix, extra in APPEND.items():
        if command.startswith(prefix) and not (prefix == "svg train" and ("--batch-size" in command
                                                                           or "--resume" in command)):
            command = f"{command} {extra}"
    return command


def to_argv(command: str) -> list[str]:
    args = command.split()
    if args[0] == "svg":
        return [sys.executable, "-m", "svg_cli", *args[1:]]
    if args[0] == "python":
        return [sys.executable, *(str(REPO / a) if a.startswith("examples/") else a for a in args[1:])]
    raise AssertionError(f"the README runs {args[0]!r}: teach tests/test_readme.py about it")


def readme_commands() -> tuple[list[str], list[tuple[str, str]]]:
    run, skipped = [], []
    for line in shell_lines((REPO / "README.md").read_text()):
        if line.startswith(("make ", "source ")):
            continue  # make demo / make test / make bench: the Makefile's own targets
        reason = next((why for key, why in NOT_RUN.items() if key in line), None)
        if reason:
            skipped.append((line, reason))
        else:
            run.append(line)
    return run, skipped


def test_readme_lines_are_all_classified():
    run, skipped = readme_commands()
    assert len(run) >= 20 and all(line.startswith(("svg ", "python ")) for line in run)
    assert {why for _, why in skipped} <= set(NOT_RUN.values()) and len(skipped) <= 17
    demo = demo_commands()
    assert any(c.startswith("svg export runs/demo/train --out runs/demo/bundle") for c in demo), demo
    assert not any("$(" in c for c in demo), demo  # every Makefile variable filled in


@pytest.mark.slow
def test_readme_commands_run_after_make_demo(tmp_path):
    env = dict(os.environ, SVG_CACHE_DIR=str(tmp_path / "cache"))
    examples = tmp_path / "pkgs"
    examples.mkdir()
    (examples / "svg_examples").symlink_to(REPO / "examples")  # what the wheel installs as svg_examples
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(examples), env.get("PYTHONPATH")]))
    run, _ = readme_commands()
    for command in [*demo_commands(), *run]:
        result = subprocess.run(to_argv(shrink(command)), cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"README command failed: {command}\n{result.stderr[-2000:]}"
