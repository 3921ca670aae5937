"""Domain labels: the paper's MSC prompt and parse, the offline classifier's held-out accuracy on
the shipped labelled pool, MATH500 (never seen in training), and the LLM path through engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from s1.curation.domains import (CLASSIFY_SYSTEM, CLASSIFY_USER, DomainsConfig, domains,
                                 evaluate_offline, msc, parse_code, rubrics)
from s1.curation.llm import LLMConfig
from s1.errors import UserError

from hosted_api import hosted  # noqa: F401  (fixture)

DATA = Path(__file__).parents[2] / "src" / "s1" / "data"
MATH500 = [json.loads(line) for line in (DATA / "benchmarks" / "math500.jsonl").open()]
SUBJECT_CODE = {"Number Theory": "11", "Geometry": "51", "Counting & Probability": "05"}


def test_msc_is_the_papers_61_codes_and_prompt():
    codes = msc()
    assert len(codes) == 61 and codes["11"] == "Number theory" and codes["97"] == "Mathematics education"
    assert rubrics().startswith("### Mathematical logic and foundations\n* Code: 03\n* Description: ")
    assert rubrics().count("\n\n### ") == 60
    assert CLASSIFY_SYSTEM.endswith("two-digit code of the subject that the question belongs to.")
    assert CLASSIFY_USER.format(question="Q", rubrics="R") == "## Question\nQ\n\n## Classification rubrics\nR"


def test_parse_takes_the_last_two_characters_as_the_paper():
    assert parse_code("It is about primes.\n11") == "11"
    assert parse_code("Answer: 05.") == "05"
    assert parse_code("Number theory") is None
    assert parse_code("code 99") is None        # not an MSC code
    assert parse_code("") is None


def test_config_is_validated():
    with pytest.raises(UserError, match="unknown domain method"):
        DomainsConfig(method="astrology")
    with pytest.raises(UserError, match="on_unparsed"):
        DomainsConfig(method="llm", on_unparsed="guess")


def test_offline_classifier_held_out_accuracy(capsys):
    result = evaluate_offline()
    with capsys.disabled():
        print(f"\noffline MSC classifier, held-out fifth: accuracy {result['accuracy']:.3f} "
              f"(majority class {result['majority_baseline']:.3f}; {result['train']} train / "
              f"{result['test']} test) per source {result['per_source']}")
    assert result["test"] > 2000
    assert result["accuracy"] > 0.6 > 2 * result["majority_baseline"]


def test_offline_labels_math500_subjects_it_never_saw():
    rows = [r for r in MATH500 if r["subject"] in SUBJECT_CODE]
    out = domains(Dataset.from_list([{"question": r["problem"]} for r in rows]))
    assert set(out["domain_source"]) == {"offline"}
    assert all(msc()[c] == d for c, d in zip(out["domain_code"], out["domain"]))
    right = sum(c == SUBJECT_CODE[r["subject"]] for c, r in zip(out["domain_code"], rows))
    assert right / len(rows) > 0.75, right / len(rows)


def test_llm_classifier_through_a_hosted_api_with_the_papers_parse(hosted, tmp_path):
    cfg = DomainsConfig(method="llm", cache=str(tmp_path / "domains.jsonl"),
                        classifier=LLMConfig(api="chat", base_url=hosted, api_key_env="S1_TEST_KEY",
                                             backoff_s=0.01))
    out = domains(Dataset.from_list([{"question": "Is 91 prime?"}]), cfg)
    assert out["domain"] == ["Number theory"] and out["domain_source"] == ["llm"]


@pytest.mark.slow
def test_llm_classifier_on_a_real_server_falls_back_or_drops(llama_server, tmp_path):
    questions = Dataset.from_list([{"question": r["problem"]} for r in MATH500[:2]])
    classifier = LLMConfig(api="chat", base_url=llama_server + "/v1", max_tokens=24)
    fallback = domains(questions, DomainsConfig(method="llm", classifier=classifier, on_unparsed="offline",
                                                cache=str(tmp_path / "d.jsonl")))
    assert len(fallback) == 2 and set(fallback["domain_source"]) <= {"llm", "offline"}
    dropped = []
    strict = domains(questions, DomainsConfig(method="llm", classifier=classifier, cache=str(tmp_path / "d.jsonl")),
                     on_drop=lambda row, why: dropped.append(why))
    assert len(strict) + len(dropped) == 2
    assert all(why.startswith("no MSC code in the classifier's reply") for why in dropped)
    assert [s for s in fallback["domain_source"] if s == "llm"] == list(strict["domain_source"])
