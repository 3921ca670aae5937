"""Report pages every stage shares: a page is a list of blocks, rendered once as Markdown and once
as one self-contained HTML file (plots embedded), so the two never disagree; figures are
matplotlib PNGs drawn off-screen. `write_pages` builds them in a temporary directory and renames
them into place: a failure leaves no half-written report.

Blocks: ("h1"|"h2"|"h3", text), ("p", text), ("img", file name, alt text), ("table", header, rows),
("html", an HTML fragment the caller escaped, its Markdown stand-in, the CSS it needs).
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def figure(width: float = 6.4):
    """(fig, ax) of a report figure; no display, files only."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, 4.2), dpi=110)


def save(fig, ax, path: Path, title: str, xlabel: str, ylabel: str, legend_size: int = 8) -> None:
    """Title, axis labels, a light grid and a legend (when anything is labelled); then the PNG."""
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})")
        elif kind == "table":
            header, rows = b[1], b[2]
            lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
                     "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "html":
            out.append(b[2])
    return "\n\n".join(out) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}p{color:#555;font-size:14px}")


def render_html(blocks: list, images: dict[str, bytes], title: str = "s1 report") -> str:
    esc = html.escape
    css = _CSS + "".join(dict.fromkeys(b[3] for b in blocks if b[0] == "html"))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}"
             f"</title><style>{css}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(b[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(b[1])}</p>")
        elif kind == "img":
            data = base64.b64encode(images[b[1]]).decode("ascii")
            parts.append(f"<img alt='{esc(b[2])}' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>"
                           for r in b[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "html":
            parts.append(b[1])
    parts.append("</body></html>")
    return "\n".join(parts)


def write_pages(out_dir: Path, build: Callable[[Path], tuple[list, list[str]]],
                title: str) -> list[Path]:
    """report.md, report.html and the PNGs `build(tmp)` draws into tmp, renamed into `out_dir`;
    returns their paths."""
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    try:
        blocks, pngs = build(tmp)
        (tmp / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
        images = {name: (tmp / name).read_bytes() for name in pngs}
        (tmp / "report.html").write_text(render_html(blocks, images, title), encoding="utf-8")
        written = []
        for name in pngs + ["report.md", "report.html"]:
            os.replace(tmp / name, out_dir / name)
            written.append(out_dir / name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
