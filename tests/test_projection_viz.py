"""pokedemo.projection and pokedemo.viz: arrays in, maps and figures out."""
import numpy as np
import plotly.io as pio
import pytest

from pokedemo.projection import project
from pokedemo.viz import accuracy_figure, embedding_figure


@pytest.mark.parametrize("method", ["PCA", "t-SNE", "UMAP"])
def test_every_method_maps_n_points_to_2d_and_keeps_clusters_apart(method):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    points = np.concatenate([c + rng.normal(size=(10, 16)) for c in centres])
    coords = project(points, method, 5, seed=0)
    assert coords.shape == (30, 2) and np.isfinite(coords).all()
    labels = np.repeat(np.arange(3), 10)
    means = np.stack([coords[labels == k].mean(0) for k in range(3)])
    within = np.mean([np.linalg.norm(coords[labels == k] - means[k], axis=1).mean() for k in range(3)])
    between = np.min([np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)])
    assert between > within


def test_a_map_needs_three_points_and_a_known_method():
    with pytest.raises(ValueError, match="at least 3 points"):
        project(np.zeros((2, 4)), "PCA")
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.zeros((5, 4)), "LDA")


def test_the_embedding_figure_draws_roles_mistakes_and_thumbnails():
    coords = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 1, 0, 1, 0, 1])
    role = np.array(["support", "support", "query", "query", "prototype", "prototype"])
    mistakes = np.array([False, False, True, False, False, False])
    thumbs = [np.zeros((8, 8, 3), np.uint8)] * 4 + [None, None]
    figure = embedding_figure(coords, labels, role, ["a", "b"], [str(i) for i in range(6)], mistakes, "t", thumbs)
    symbols = {(trace.name, trace.marker.symbol) for trace in figure.data}
    assert symbols == {("a", "circle"), ("b", "circle"), ("a", "star"), ("b", "star")}
    assert len(figure.data) == 6                                 # a trace per class and role
    query_a = next(t for t in figure.data if t.name == "a" and t.marker.size == 9)
    assert list(query_a.marker.line.color) == ["#d00000"]       # the wrong answer: a red ring, the one mistake colour
    assert all("#d00000" not in list(t.marker.line.color) for t in figure.data if t is not query_a)
    assert "#d62728" not in [t.marker.color for t in figure.data]  # no class is drawn in red
    assert len(figure.layout.images) == 4


def test_the_map_looks_as_plotly_white_draws_markers():
    """The maps take plotly_white's layout alone (cheaper to copy): what it sets for a scatter of markers is
    layout, so the figure renders as it did with the whole template."""
    figure = embedding_figure(np.arange(6, dtype=float).reshape(3, 2), np.array([0, 0, 1]),
                              np.array(["support", "query", "prototype"]), ["a", "b"], ["x", "y", "z"])
    white = pio.templates["plotly_white"]
    assert figure.layout.template.layout == white.layout
    scatter_defaults = {k for s in white.data.scatter for k in s.to_plotly_json() if k != "type"}
    assert scatter_defaults <= {"fillpattern"} and all(t.fill in (None, "none") for t in figure.data)


def test_the_accuracy_figure_has_a_bar_group_per_shot_with_error_bars():
    rows = [{"model": m, "n_shot": s, "accuracy": 0.8, "ci95": 0.01} for m in ("pixels", "student") for s in (1, 5)]
    figure = accuracy_figure(rows)
    assert [t.name for t in figure.data] == ["1-shot", "5-shot"] and list(figure.data[0].error_y.array) == [1.0, 1.0]
