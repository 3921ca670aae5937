"""The remote engine's options: validated once in EngineOptions, the API key never on disk."""

import pytest

from s1.errors import UserError
from s1.evaluation.runs import _redacted
from s1.generation.options import EngineOptions


def test_api_key_is_masked_in_what_is_written():
    opts = EngineOptions(server="http://127.0.0.1:8000", api_key="sk-secret")
    assert opts.to_dict()["api_key"] == "***" and opts.api_key == "sk-secret"
    assert EngineOptions().to_dict()["api_key"] is None
    assert _redacted(["s1", "eval", "--api-key", "sk-secret", "--api-key=sk-2", "--server", "u"]) == [
        "s1", "eval", "--api-key", "***", "--api-key=***", "--server", "u"]


@pytest.mark.parametrize("field, value, message", [
    ("dialect", "grpc", "unknown --dialect 'grpc'; choose one of auto, ids, llama-cpp-python"),
    ("concurrency", 0, "--concurrency must be at least 1 (0)"),
    ("timeout", 0, "--timeout must be a positive number of seconds (0)"),
])
def test_bad_remote_options_are_one_clear_error(field, value, message):
    with pytest.raises(UserError) as err:
        EngineOptions(server="http://127.0.0.1:8000", **{field: value})
    assert str(err.value) == message
