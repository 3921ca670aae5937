"""The math-verify worker: a separate interpreter that reads JSON lines on stdin and writes one
reply per line on stdout: `[gold, prediction]` gets a verdict, `{"cluster": [answers]}` the
equivalence classes of the answers (majority voting).

It is launched by `verifier.VerifierPool` with `python -c`, not through multiprocessing, so no
user script is re-imported and no thread state is forked. It imports nothing from s1.
"""

import json
import logging
import os
import re
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
        return "equal" if _same(parse, verify, config, gold, pred, g, p) else "not equal"
    except MemoryError:
        return "error: out of memory"
    except RecursionError:
        return "error: nesting too deep"
    except Exception as e:  # sympy and the LaTeX parser raise many kinds on odd input
        return f"error: {type(e).__name__}"


_TRIG = re.compile(r"\\(?:sin|cos|tan|sec|csc|cot)\b")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?")


def _same(parse, verify, config, gold: str, pred: str, g: list, p: list) -> bool:
    """math-verify's verdict on two parsed answers (gold first), with a second look."""
    return verify(g, p, timeout_seconds=None) or _second_look(parse, verify, config, gold, pred,
                                                              g, p)


def _second_look(parse, verify, config, gold: str, pred: str, g: list, p: list) -> bool:
    """Readings math-verify does not try itself, each only after it found the two unequal:
    `i` as the imaginary unit (1+2i = i(2-i)), degrees inside a trigonometric function
    (sin(90° - x) = cos x), and a number written as an unevaluated product (2.3148 × 10^{-3})
    by its value, compared with math-verify's own rounding."""
    import sympy

    gx, px = g[0], p[0]
    if not (isinstance(gx, sympy.Basic) and isinstance(px, sympy.Basic)):
        return False
    # math-verify's symbols carry assumptions (`i` is real), so they are matched by name.
    units = {s: sympy.I for s in gx.free_symbols | px.free_symbols if s.name == "i"}
    if units and verify([gx.subs(units)], [px.subs(units)], timeout_seconds=None):
        return True
    if _TRIG.search(gold + pred) and "circ" in gold + pred:
        to_radians = r"(\\frac{\1\\pi}{180})"
        g2 = parse(_DEGREES.sub(to_radians, gold), extraction_config=config, parsing_timeout=None)
        p2 = parse(_DEGREES.sub(to_radians, pred), extraction_config=config, parsing_timeout=None)
        if g2 and p2 and verify(g2, p2, timeout_seconds=None):
            return True
    if not gx.free_symbols and not px.free_symbols and (gx.atoms(sympy.Float) or px.atoms(sympy.Float)):
        values = [sympy.Float(x.evalf(30), 30) if not x.is_Atom else x for x in (gx, px)]
        if all(v.is_number for v in values):
            return bool(verify([values[0]], [values[1]], timeout_seconds=None))
    return False


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
                    if parsed[h] and _same(parse, verify, config, answers[h], answer,
                                           parsed[h], p):
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
