"""Plotly figure builders: arrays in, `go.Figure` out. The only module that knows plotly."""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def colour(k: int, n: int) -> str:
    """Distinct colours: the palette for up to 10 classes, evenly spaced hues beyond."""
    return PALETTE[k % len(PALETTE)] if n <= len(PALETTE) else f"hsl({int(360 * k / n)}, 70%, 45%)"


def png_data_uri(image: np.ndarray, size: int = 48) -> str:
    """(S, S, 3) uint8 -> a small inline PNG (no file on disk, nothing shared between visitors)."""
    buffer = io.BytesIO()
    Image.fromarray(image).resize((size, size)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def embedding_figure(coords: np.ndarray, labels: np.ndarray, role: np.ndarray, class_names: list[str],
                     hover: list[str], mistakes: np.ndarray | None = None, title: str = "",
                     thumbnails: list[np.ndarray] | None = None) -> go.Figure:
    """A scatter of one model's 2-D map.

    coords: (N, 2); labels: (N,) class index (for queries: the predicted class when the truth is
    unknown); role: (N,) "support" | "query" | "prototype"; hover: (N,) texts; mistakes: (N,) bool.
    """
    figure = go.Figure()
    mistakes = np.zeros(len(coords), dtype=bool) if mistakes is None else mistakes
    styles = {"support": dict(size=13, line=dict(width=2, color="black"), symbol="circle"),
              "query": dict(size=8, line=dict(width=0), symbol="circle"),
              "prototype": dict(size=20, line=dict(width=1.5, color="black"), symbol="star")}
    for k, name in enumerate(class_names):
        for kind, style in styles.items():
            mask = (labels == k) & (role == kind)
            if not mask.any():
                continue
            figure.add_trace(go.Scatter(
                x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=f"{name} ({kind})",
                legendgroup=name, showlegend=len(class_names) <= 10 and (kind == "support" or not (role == "support").any()),
                marker=dict(color=colour(k, len(class_names)), **style),
                text=[hover[i] for i in np.flatnonzero(mask)], hoverinfo="text"))
    if mistakes.any():
        figure.add_trace(go.Scatter(x=coords[mistakes, 0], y=coords[mistakes, 1], mode="markers", name="mistake",
                                    marker=dict(symbol="x-thin-open", size=16, line=dict(width=3, color="red")),
                                    text=[hover[i] for i in np.flatnonzero(mistakes)], hoverinfo="text"))
    if thumbnails is not None:
        span = float(np.ptp(coords, axis=0).max() or 1.0)
        for (x, y), image, kind in zip(coords, thumbnails, role):
            if image is not None and kind != "prototype":
                figure.add_layout_image(source=png_data_uri(image), x=x, y=y, xref="x", yref="y",
                                        sizex=span / 12, sizey=span / 12, xanchor="center", yanchor="middle",
                                        layer="above")
    figure.update_layout(title=title, template="plotly_white", height=430, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.05), xaxis=dict(visible=False), yaxis=dict(visible=False))
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
