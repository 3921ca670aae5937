"""Every command of the README runs as written: the offline ones in a fresh directory, one after
the other as a reader would type them (a `&` server stays up for the commands after it); a
command that needs a GPU or a hub model has its flags checked with `--show` instead, so the
paper's command cannot fail at once again. The two set-up commands at the top are CI's own run
(.ci/run) and are not repeated here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_docs import README, bash_blocks

ROOT = Path(__file__).resolve().parents[1]
HUB_MODEL = re.compile(r"--model\s+(?!runs/)[\w.-]+/[\w.-]+(\s|$)")


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines and multi-line quotes joined, comments dropped."""
    out, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:          # a quote still open: the command goes on
            continue
        out.append(pending.replace("\\\n", " "))
        pending = ""
    assert not pending, f"unfinished command in README: {pending!r}"
    return out


def readme_commands() -> list[str]:
    return [c for b in bash_blocks(README.read_text(encoding="utf-8"))[2:] for c in commands(b)]


def needs_what_ci_lacks(command: str) -> bool:
    """A hub model (org/name), a GPU, a server elsewhere or a multi-GPU launcher."""
    return bool(HUB_MODEL.search(command)) or any(
        word in command for word in ("--device cuda", "--server ", "--upstream ", "accelerate "))


def test_the_readme_has_an_offline_example_per_stage_and_the_papers_command():
    cmds = readme_commands()
    offline = [c for c in cmds if not needs_what_ci_lacks(c)]
    for stage in ("s1 generate", "s1 eval", "s1 report", "s1 curate", "s1 train", "s1 serve",
                  "curl "):
        assert any(c.startswith(stage) for c in offline), stage
    paper = [c for c in cmds if needs_what_ci_lacks(c)]
    assert any("simplescaling/s1-32B" in c and "--out " in c for c in paper)


def test_commands_are_split_as_bash_reads_them():
    block = "a \\\n  b\n# note\ncurl -d '{\n  \"x\": 1}'\nc &\n"
    assert commands(block) == ["a    b", "curl -d '{\n  \"x\": 1}'", "c &"]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not up after {seconds} s:\n" + log.read_text()[-3000:])


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_WAIT_POLICY": "PASSIVE"}
    servers: list[tuple[subprocess.Popen, Path]] = []
    outputs: dict[str, str] = {}
    try:
        for cmd in readme_commands():
            if cmd.endswith("&"):               # a server the next commands talk to
                argv = shlex.split(cmd[:-1])
                port = argv[argv.index("--port") + 1]
                log = tmp_path / f"server-{port}.log"
                proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log.open("w"),
                                        stderr=subprocess.STDOUT)
                servers.append((proc, log))
                _wait_until_up(f"http://127.0.0.1:{port}/health", proc, log)
                continue
            if needs_what_ci_lacks(cmd):
                if cmd.startswith("s1 eval"):   # its flags, checked without a model
                    p = subprocess.run(cmd + " --show", shell=True, cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=300)
                    assert p.returncode == 0, (cmd, p.stderr)
                    assert "simplescaling/s1-32B" in p.stdout
                continue
            p = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, executable="/bin/bash",
                               capture_output=True, text=True, timeout=900)
            assert p.returncode == 0 and "Traceback" not in p.stderr, (cmd, p.stderr[-3000:])
            outputs[cmd] = p.stdout
    finally:
        for proc, _ in servers:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    said = {cmd.split()[1] if cmd.startswith("s1 ") else cmd.split()[0]: out
            for cmd, out in outputs.items()}
    assert "[answer]" in said["generate"]
    assert (tmp_path / "runs" / "eval-example" / "report.html").is_file()
    assert (tmp_path / "runs" / "curate" / "offline-proxies" / "s1k.parquet").is_file()
    assert (tmp_path / "runs" / "train" / "tiny-quick" / "config.json").is_file()
    reply = json.loads(said["curl"])
    choice = reply["choices"][0]
    assert choice["s1"]["waits"] >= 1 and choice["s1"]["thinking_tokens"] >= 16
    assert choice["message"]["reasoning_content"] and choice["message"]["content"]


@pytest.mark.parametrize("page", ["docs/harness.md"])
def test_the_papers_commands_in_the_docs_parse(page):
    """Each `s1 eval` of the harness page, its flags checked with --show (no GPU, no model)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    evals = [c for b in bash_blocks((ROOT / page).read_text(encoding="utf-8"))
             for c in commands(b) if c.startswith("s1 eval")]
    assert len(evals) >= 2
    for cmd in evals:
        argv = [sys.executable, "-m", "s1.cli", *shlex.split(cmd)[1:], "--show"]
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, (cmd, p.stderr)
        assert "32768" in p.stdout and "runs/s1-32b-aime24" in p.stdout
