"""An evaluation report: every number in report.json, every figure a PNG, one index.html.

    report = Report("reports/run1", title="CXR phantom, prog-GAN step 20k")
    report.numbers("fidelity.pixels", {"fid": 12.3, "fid_real_real": 4.1, ...})
    report.figure("fidelity", "grid", fig, caption="real (top) and synthetic (bottom)")
    report.write()        # report.json, index.html, figures/*.png, manifest.json

Sections are dotted paths: `numbers("privacy.pairwise_attack", {...})` lands in
report.json under {"privacy": {"pairwise_attack": {...}}} and in the HTML under the top-level
section "privacy". Settings go beside the numbers they produced (`settings=`), so a number never
travels without what made it. Every file is written atomically; `write` can be called again as
sections are added (a long evaluation leaves a readable report at every stage); `discard` removes
what the report wrote, for a run that fails.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxsyn import files

FIGURES = "figures"


def figure(width: float = 6.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    """(Figure, axes) on the Agg canvas: no pyplot state, safe in threads and on headless hosts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    fig.tight_layout()
    with files.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


class Report:
    """Numbers, settings, texts and figures by section; `write()` renders them."""

    def __init__(self, out_dir: str | os.PathLike, *, title: str = "jaxsyn evaluation"):
        self.out_dir = Path(out_dir)
        self.title = title
        self.data: dict[str, Any] = {}
        self.figures: list[tuple[str, str, str]] = []  # (section, file, caption)
        self.texts: list[tuple[str, str]] = []
        self.written: list[Path] = []  # every file this report wrote, for `discard`
        self._new_dirs = [d for d in (self.out_dir / FIGURES, self.out_dir) if not d.exists()]

    def _node(self, section: str) -> dict:
        node = self.data
        for part in section.split("."):
            node = node.setdefault(part, {})
        return node

    def numbers(self, section: str, values: Mapping[str, Any], *, settings: Mapping | None = None):
        node = self._node(section)
        node.update(_jsonable(values))
        if settings:
            node["settings"] = _jsonable(settings)

    def text(self, section: str, message: str) -> None:
        """A sentence in the HTML (and report.json's `notes`), e.g. why a part was skipped."""
        self.texts.append((section, message))
        self.data.setdefault("notes", []).append(f"{section}: {message}")

    def figure(self, section: str, name: str, fig, caption: str = "") -> Path:
        rel = f"{FIGURES}/{section.replace('.', '_')}_{name}.png"
        self.written.append(save_figure(fig, self.out_dir / rel))
        self.figures = [f for f in self.figures if f[1] != rel] + [(section, rel, caption)]
        return self.out_dir / rel

    def write(self) -> Path:
        """report.json, index.html and manifest.json in out_dir; returns index.html's path."""
        data = _strict({"title": self.title, **self.data})  # JSON has no NaN: null
        self.written.append(files.write_json(self.out_dir / "report.json", data))
        self.written.append(files.write_text(self.out_dir / "index.html", self._html()))
        manifest = {"files": files.tree_files(self.out_dir)}
        self.written.append(files.write_json(self.out_dir / files.MANIFEST, manifest))
        return self.out_dir / "index.html"

    def discard(self) -> None:
        """Delete every file this report wrote and the folders it created (if left empty): what
        an evaluation that failed half-way calls, so no partial report is left behind. Files
        that were there before and not rewritten stay."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written = []
        for folder in self._new_dirs:
            with contextlib.suppress(OSError):  # not empty (others' files) or already gone
                folder.rmdir()

    def _html(self) -> str:
        sections = list(dict.fromkeys(
            [k for k in self.data if k != "notes"]
            + [s.split(".")[0] for s, _, _ in self.figures]
            + [s.split(".")[0] for s, _ in self.texts]
        ))  # fmt: skip
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
            "padding:2px 8px;text-align:left}td.n{text-align:right;font-family:monospace}"
            "figure{margin:1em 0}img{max-width:100%}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for top in sections:
            parts.append(f"<h2>{html.escape(top)}</h2>")
            for s, message in self.texts:
                if s.split(".")[0] == top:
                    parts.append(f"<p>{html.escape(message)}</p>")
            if top in self.data:
                rows = _flatten(self.data[top])
                parts.append("<table><tr><th>quantity</th><th>value</th></tr>")
                for key, value in rows:
                    parts.append(
                        f"<tr><td>{html.escape(key)}</td><td class='n'>{_fmt(value)}</td></tr>"
                    )
                parts.append("</table>")
            for s, rel, caption in self.figures:
                if s.split(".")[0] == top:
                    parts.append(
                        f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                    )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, Mapping):
        out = []
        for k, v in node.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(node, list) and len(node) > 12:
        return [(prefix, f"[{len(node)} values: see report.json]")]
    return [(prefix, node)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return html.escape(json.dumps(value) if isinstance(value, list | dict) else str(value))


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    """Numpy and JAX scalars/arrays to plain JSON types (NaN kept as float for the HTML)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value
