"""The `s1` command in-process (`s1.cli.main`): exit codes, one-line errors, the eval config
(file < flags < overrides), and results read from `--json`, never from pretty-printed text."""

from __future__ import annotations

import json

import pytest
import yaml

from s1 import __version__
from s1.cli import main
from s1.evaluation.records import Record, RunSummary

FAST = ["--engine", "transformers", "--threads", "2"]


def s1(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys):
    assert s1(capsys, "--version") == (0, f"s1 {__version__}\n", "")
    code, out, _ = s1(capsys, "eval", "--help")
    assert code == 0 and "--config" in out and "--model" in out and "--batch-size" in out


def test_eval_config_file_then_flags_then_overrides(capsys, tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("benchmark: {name: gsm8k, limit: 3}\nmethod: {max_thinking: [16, 32], "
                   "num_ignore: 0}\nbudget: {max_answer: 8}\nrun: {out: here}\n"
                   "engine: {engine: transformers}\n")
    code, out, err = s1(capsys, "eval", "--config", str(cfg), "--max-thinking", "0,64",
                        "--threads", "3", "budget.max_answer=12", "method.num_ignore=0,1",
                        "--show")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["method"]["max_thinking"] == "0,64"          # the flag beats the file
    assert shown["budget"]["max_answer"] == 12                 # the override beats the file
    assert shown["method"]["num_ignore"] == "0,1"
    assert shown["benchmark"] == {**shown["benchmark"], "name": "gsm8k", "limit": 3}
    assert shown["engine"]["engine"] == "transformers" and shown["engine"]["threads"] == 3
    assert shown["method"]["ignore_strings"] == ["Wait"] and shown["run"]["out"] == "here"
    # The shipped config resolves by name.
    code, out, _ = s1(capsys, "eval", "--config", "smoke", "--show")
    assert code == 0 and yaml.safe_load(out)["benchmark"]["name"] == "gsm8k"


@pytest.mark.parametrize("args, words", [
    (["eval", "--benchmark", "gsm8k", "--out", "o", "--max-thinking", "8,lots"], "not a number"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "--max-thinking", "-1"], "non-negative"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "optim.lr=1"], "unknown override key"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "method.nope=1"], "unknown field method.nope"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "budget.top_p=high"], "budget.top_p must be"),
    (["eval", "--out", "o"], "give --benchmark"),
    (["eval", "--benchmark", "gsm8k"], "give --out"),
    (["eval", "--config", "no-such-config", "--show"], "unknown eval config 'no-such-config'"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "--engine", "vllm-magic"], "unknown engine"),
    (["eval", "--benchmark", "gsm8k", "--out", "o", "--batch-size", "0"], "--batch-size"),
    (["generate", "--threads", "0", "x"], "threads must be at least 1"),
    (["generate", "--top-k", "-2", "x"], "top_k"),
    (["generate", "--max-thinking", "lots", "x"], "not a number"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    code, out, err = s1(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert not any(tmp_path.iterdir())                          # nothing written


def test_max_thinking_zero_is_one_rule_for_generate_and_eval(capsys, tmp_path):
    code, out, err = s1(capsys, "eval", "--benchmark", "gsm8k", "--out", str(tmp_path / "r"),
                        "--max-thinking", "0,auto", "--show")
    assert code == 0, err
    assert yaml.safe_load(out)["method"]["max_thinking"] == "0,auto"


@pytest.mark.slow
def test_generate_json_in_process(capsys):
    code, out, err = s1(capsys, "generate", *FAST, "--max-thinking", "6", "--max-answer", "4",
                        "--json", "What is 2+2?")
    assert code == 0, err
    [trace] = [json.loads(line) for line in out.splitlines()]
    assert trace["engine"] == "transformers"
    assert trace["thinking_tokens"] == len(trace["thinking_ids"]) <= 6


@pytest.mark.slow
def test_eval_json_then_compare_json_in_process(capsys, tmp_path):
    out_dir = tmp_path / "runs"
    code, out, err = s1(capsys, "eval", *FAST, "--benchmark", "gsm8k", "--limit", "2",
                        "--max-thinking", "0,4", "--max-answer", "6", "--quiet", "--json",
                        "--out", str(out_dir))
    assert code == 0, err
    result = json.loads(out)
    names = [r["name"] for r in result["runs"]]
    assert names == ["gsm8k-budget-max0-ign0-s0", "gsm8k-budget-max4-ign0-s0"]
    for r in result["runs"]:
        on_disk = json.loads((out_dir / r["name"] / "summary.json").read_text())
        assert on_disk == r and RunSummary.from_dict(on_disk).to_dict() == on_disk
        lines = (out_dir / r["name"] / "records.jsonl").read_text().splitlines()
        for line in lines:
            assert Record.from_dict(json.loads(line)).to_dict() == json.loads(line)
        assert r["questions"] == 2 and r["thinking"]["max"] <= r["a_max"]
    [curve] = result["curves"]
    assert [p["a_max"] for p in curve["points"]] == [0, 4]
    a, b = (str(out_dir / n) for n in names)
    code, out, err = s1(capsys, "compare", a, a, "--resamples", "200", "--json")
    assert code == 0, err
    same = json.loads(out)
    assert same["difference"] == 0 and same["shared"] == 2 and same["p_value"] == 1.0
    code, out, err = s1(capsys, "compare", a, b, "--resamples", "200", "--json")
    assert code == 0 and json.loads(out)["shared"] == 2
    # The same command again resumes: nothing is generated twice.
    code, out, err = s1(capsys, "eval", *FAST, "--benchmark", "gsm8k", "--limit", "2",
                        "--max-thinking", "0,4", "--max-answer", "6", "--quiet", "--json",
                        "--out", str(out_dir))
    assert code == 0 and json.loads(out)["runs"] == result["runs"]
