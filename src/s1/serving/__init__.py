"""`s1 serve`: an OpenAI-compatible server with minimum and maximum thinking budgets."""

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str):
    # FastAPI loads only when serving, not with every `s1` command
    if name in __all__:
        from s1.serving import app
        return getattr(app, name)
    raise AttributeError(name)
