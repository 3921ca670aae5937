"""The math-verify worker: a separate interpreter that reads JSON lines on stdin and writes one
reply per line on stdout: `[gold, prediction]` gets a verdict, `{"cluster": [answers]}` the
equivalence classes of the answers (majority voting).

It is launched by `verifier.VerifierPool` with `python -c`, not through multiprocessing, so no
user script is re-imported and no thread state is forked. It imports nothing from s1.
"""

import json
import logging
import os
import sys

MEMORY_BYTES = 4 * 1024**3


def _cap_memory() -> None:
    # A runaway sympy computation (10 raised to a huge power) fails fast with MemoryError
    # instead of swapping the machine; the parent's deadline covers the rest.
    try:
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, MEMORY_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _verdict(parse, verify, config, gold: str, pred: str) -> str:
    try:
        g = parse(gold, extraction_config=config, parsing_timeout=None)
        if not g:
            return "gold unparseable"
        p = parse(pred, extraction_config=config, parsing_timeout=None)
        if not p:
            return "answer unparseable"
        # Gold first: math-verify judges intervals, inequalities and equations by the gold's form.
        return "equal" if verify(g, p, timeout_seconds=None) else "not equal"
    except MemoryError:
        return "error: out of memory"
    except RecursionError:
        return "error: nesting too deep"
    except Exception as e:  # sympy and the LaTeX parser raise many kinds on odd input
        return f"error: {type(e).__name__}"


def _clusters(parse, verify, config, answers: list) -> list:
    """Greedy equivalence classes in order: each answer joins the first earlier class whose
    first member math-verify finds equal to it (that member taken as the gold), else starts its
    own. Returns, per answer, the index of its class's first member. In-order greediness makes
    the classes of a prefix the prefix of the classes, as maj@k for growing k needs."""
    parsed, heads, out = [], [], []
    for i, answer in enumerate(answers):
        try:
            p = parse(answer, extraction_config=config, parsing_timeout=None)
        except Exception:  # an unparseable answer is only ever equal to itself
            p = []
        parsed.append(p)
        home = i
        if p:
            for h in heads:
                try:
                    if parsed[h] and verify(parsed[h], p, timeout_seconds=None):
                        home = h
                        break
                except Exception:
                    continue
        if home == i:
            heads.append(i)
        out.append(home)
    return out


def main() -> None:
    # Keep the protocol channel private: anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _cap_memory()
    # The parent enforces the deadline; math-verify's own SIGALRM timeouts stay off.
    logging.disable(logging.WARNING)
    from math_verify import LatexExtractionConfig, parse, verify

    # LaTeX only: answers arrive inside `$...$`, and math-verify's plain-expression extractor
    # hands text to sympy's `parse_expr`, which evaluates Python: model text stays out of it.
    config = [LatexExtractionConfig()]

    # Warm up (the LaTeX grammar, sympy's caches) before saying ready: the first verification
    # of a fresh worker is slow, and that must not land on a question's deadline.
    _verdict(parse, verify, config, "$\\frac{1}{2}$", "$0.5$")
    channel.write('"ready"\n')
    channel.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if isinstance(request, dict) and isinstance(request.get("cluster"), list):
            try:
                verdict = _clusters(parse, verify, config, request["cluster"])
            except (MemoryError, RecursionError) as e:
                verdict = f"error: {type(e).__name__}"
        elif isinstance(request, list) and len(request) == 2:
            verdict = _verdict(parse, verify, config, *request)
        else:
            verdict = "error: bad request"
        channel.write(json.dumps(verdict) + "\n")
        channel.flush()


if __name__ == "__main__":
    main()
