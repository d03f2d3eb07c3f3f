"""Plotly figure builders: arrays in, `go.Figure` out. The only module that knows plotly."""
from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from .images import png_data_uri

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#393b79"]  # no red: red marks a wrong answer, everywhere


def colour(k: int, n: int) -> str:
    """Distinct colours: the palette for up to 10 classes, evenly spaced hues beyond."""
    return PALETTE[k % len(PALETTE)] if n <= len(PALETTE) else f"hsl({30 + int(300 * k / n)}, 70%, 45%)"


MISTAKE_COLOUR = "#d00000"   # every wrong answer, on every map and in the predictions grid
_STYLES = {"support": dict(size=13, symbol="circle", line=("black", 2.0)),
           "query": dict(size=9, symbol="circle", line=("white", 0.5)),
           "prototype": dict(size=20, symbol="star", line=("black", 1.5))}
# plotly_white's layout alone, for the maps drawn on every task: a figure copies its template, and the whole
# template holds defaults for every kind of trace, less than half of it layout; of the trace defaults, scatters
# take only a fill pattern, which markers do not draw
_MAP_TEMPLATE = go.layout.Template(layout=pio.templates["plotly_white"].layout)


def _rings(role_mask_roles: np.ndarray, mistakes: np.ndarray) -> tuple[list[str], list[float]]:
    """Per-point marker outlines: a thick red ring on a wrong answer, the role's outline elsewhere."""
    colours = [MISTAKE_COLOUR if m else _STYLES[r]["line"][0] for r, m in zip(role_mask_roles, mistakes)]
    widths = [3.0 if m else _STYLES[r]["line"][1] for r, m in zip(role_mask_roles, mistakes)]
    return colours, widths


def embedding_figure(coords: np.ndarray, labels: np.ndarray, role: np.ndarray, class_names: list[str],
                     hover: list[str], mistakes: np.ndarray | None = None, title: str = "",
                     thumbnails: list[np.ndarray] | None = None, frames: list[tuple[str, np.ndarray, np.ndarray]] = (),
                     hover_pictures: list[str] | None = None, height: int = 400) -> go.Figure:
    """A scatter of one model's 2-D map.

    coords: (N, 2); labels: (N,) class index (for queries: the predicted class when the truth is
    unknown); role: (N,) "support" | "query" | "prototype"; hover: (N,) texts; mistakes: (N,) bool, drawn
    as a red ring. frames: (name, coords, mistakes) snapshots of the same points; the figure then has a
    slider that moves the points between them (the page's script hands the frames, kept in
    layout.meta, to plotly: Gradio draws data and layout only). hover_pictures: (N,) the points' pictures as
    inline PNGs (`TaskResult.picture_uri`), shown on hover by the page's script (customdata). thumbnails: draw
    every picture on the map.
    """
    figure = go.Figure()
    mistakes = np.zeros(len(coords), dtype=bool) if mistakes is None else np.asarray(mistakes, dtype=bool)
    groups = []
    for k, name in enumerate(class_names):
        for kind, style in _STYLES.items():
            mask = (labels == k) & (role == kind)
            if not mask.any():
                continue
            index = np.flatnonzero(mask)
            groups.append(index)
            colours, widths = _rings(role[index], mistakes[index])
            figure.add_trace(go.Scatter(
                x=coords[index, 0], y=coords[index, 1], mode="markers", name=escape(name), legendgroup=name,
                showlegend=len(class_names) <= 10 and (kind == "prototype"),
                marker=dict(color=colour(k, len(class_names)), size=style["size"], symbol=style["symbol"],
                            line=dict(color=colours, width=widths)),
                text=[hover[i] for i in index], hoverinfo="text",
                customdata=[hover_pictures[i] for i in index] if hover_pictures is not None else None))
    if thumbnails is not None:
        span = float(np.ptp(coords, axis=0).max() or 1.0)
        for (x, y), image, kind in zip(coords, thumbnails, role):
            if image is not None and kind != "prototype":
                figure.add_layout_image(source=png_data_uri(image), x=x, y=y, xref="x", yref="y",
                                        sizex=span / 12, sizey=span / 12, xanchor="center", yanchor="middle",
                                        layer="above")
    figure.update_layout(title=dict(text=title, font=dict(size=14)), template=_MAP_TEMPLATE, height=height,
                         margin=dict(l=5, r=5, t=30, b=5), legend=dict(orientation="h", y=-0.02),
                         xaxis=dict(visible=False), yaxis=dict(visible=False))
    if len(frames) > 1:
        every = np.concatenate([c for _, c, _ in frames])
        pad = 0.08 * float(np.ptp(every, axis=0).max() or 1.0)
        figure.update_xaxes(range=[every[:, 0].min() - pad, every[:, 0].max() + pad])  # one frame of view for all
        figure.update_yaxes(range=[every[:, 1].min() - pad, every[:, 1].max() + pad])
        animation = {"mode": "immediate", "frame": {"duration": 600, "redraw": False},
                     "transition": {"duration": 600, "easing": "cubic-in-out"}}
        figure.update_layout(
            meta={"frames": [{"name": name, "data": [
                {"x": points[index, 0].tolist(), "y": points[index, 1].tolist(),
                 "marker": {"line": dict(zip(("color", "width"), _rings(role[index], wrong[index])))}}
                for index in groups]}
                for name, points, wrong in frames]},
            sliders=[{"active": len(frames) - 1, "currentvalue": {"prefix": "student: "}, "pad": {"t": 5},
                      "len": 0.8, "x": 0.1, "y": 0,
                      "steps": [{"label": name, "method": "animate", "args": [[name], animation]}
                                for name, _, _ in frames]}])
        figure.update_layout(showlegend=False, margin=dict(t=30, b=70))  # the teacher's map has the legend
    return figure


def bar_figure(names: list[str], values: list[float], title: str, unit: str = "", log: bool = False) -> go.Figure:
    figure = go.Figure(go.Bar(x=names, y=values, text=[f"{v:,.3g}{unit}" for v in values], textposition="outside",
                              marker_color=PALETTE[:len(names)]))
    figure.update_layout(title=title, template="plotly_white", height=320, margin=dict(l=10, r=10, t=40, b=10))
    if log:
        figure.update_yaxes(type="log")
    return figure


def accuracy_figure(rows: list[dict], title: str = "5-way accuracy on the novel species") -> go.Figure:
    """rows: {"model", "n_shot", "accuracy", "ci95"} -> grouped bars with 95% CI error bars."""
    figure = go.Figure()
    for n_shot in sorted({r["n_shot"] for r in rows}):
        subset = [r for r in rows if r["n_shot"] == n_shot]
        figure.add_trace(go.Bar(name=f"{n_shot}-shot", x=[r["model"] for r in subset],
                                y=[100 * r["accuracy"] for r in subset],
                                error_y=dict(type="data", array=[100 * r["ci95"] for r in subset])))
    figure.update_layout(title=title, barmode="group", template="plotly_white", height=340,
                         yaxis=dict(title="accuracy (%)"), margin=dict(l=10, r=10, t=40, b=10))
    return figure


def curve_figure(x: list[float], ys: dict[str, list[float]], title: str, x_title: str, y_title: str) -> go.Figure:
    figure = go.Figure([go.Scatter(x=x, y=y, mode="lines+markers", name=name) for name, y in ys.items()])
    figure.update_layout(title=title, template="plotly_white", height=320, xaxis=dict(title=x_title),
                         yaxis=dict(title=y_title), margin=dict(l=10, r=10, t=40, b=10))
    return figure
