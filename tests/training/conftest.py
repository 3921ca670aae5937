import pytest


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's tokenizer (ChatML, pad token == end-of-turn token)."""
    from s1.generation.models import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(None))
