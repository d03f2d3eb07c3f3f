"""2-D maps of embeddings: t-SNE, UMAP or PCA. Arrays in, (N, 2) arrays out."""
from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

METHODS = ("t-SNE", "UMAP", "PCA")
PARAMETER_RANGE = (2, 50)      # t-SNE perplexity / UMAP neighbours a visitor may ask for
MAX_SEED = 2 ** 31 - 1
CONTINUED_TSNE_STEPS = 800     # a t-SNE started from another map (sklearn's least is 250)


def check_parameters(method: str, parameter: float, seed: int) -> None:
    """ValueErrors naming the limit, for what a visitor sets on the map controls."""
    if method not in METHODS:
        raise ValueError(f"unknown projection '{method}'; choose from {', '.join(METHODS)}")
    if not PARAMETER_RANGE[0] <= parameter <= PARAMETER_RANGE[1]:
        raise ValueError(f"the map's perplexity / neighbours must be between {PARAMETER_RANGE[0]} and "
                         f"{PARAMETER_RANGE[1]}, got {parameter}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"the map seed must be between 0 and {MAX_SEED}, got {seed}")


def project(embeddings: np.ndarray, method: str = "t-SNE", parameter: float | None = None, seed: int = 0,
            init: np.ndarray | None = None) -> np.ndarray:
    """embeddings: (N, D) -> (N, 2). parameter: t-SNE perplexity or UMAP n_neighbors (clipped to what N allows).
    init: (N, 2) starting positions (t-SNE and UMAP; PCA has none), e.g. another model's map of the same points."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if n < 3:
        raise ValueError(f"a map needs at least 3 points, got {n}")
    # A map of a hundred points is too small to share: one OpenMP thread (this thread's setting only) does it
    # in a fifth of the CPU time that two spinning threads burn on a shared 2-core host (docs/task-profile.md).
    with threadpool_limits(limits=1, user_api="openmp"):
        return _project(embeddings, method, parameter, seed, init)


def _project(embeddings: np.ndarray, method: str, parameter: float | None, seed: int,
             init: np.ndarray | None) -> np.ndarray:
    n = len(embeddings)
    if method == "PCA":
        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    if method == "t-SNE":
        perplexity = float(np.clip(parameter or 10, 2, max(2, (n - 1) / 3)))
        if init is None:
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                        metric="cosine", max_iter=500).fit_transform(embeddings)
        return continued_tsne(perplexity, init, seed).fit_transform(embeddings)
    if method == "UMAP":
        import umap  # imported here: numba compilation is slow and the app warms it up in the background

        neighbours = int(np.clip(parameter or 10, 2, n - 1))
        start = init if init is not None else ("random" if n < 20 else "spectral")
        return umap.UMAP(n_neighbors=neighbours, n_components=2, metric="cosine", random_state=seed,
                         init=start, n_jobs=1).fit_transform(embeddings)
    raise ValueError(f"unknown projection '{method}'; choose from {', '.join(METHODS)}")


def continued_tsne(perplexity: float, init: np.ndarray, seed: int, steps: int = CONTINUED_TSNE_STEPS) -> TSNE:
    """A t-SNE that starts from a finished map, as it is and without early exaggeration (which would first
    scatter it): the optimisation then moves the points only as far as the new embeddings' neighbourhoods ask.
    On the page's tasks, 800 steps come within 5% of the KL divergence of 3,200 (tests/test_app.py). 400 did
    for the student shipped before 5bae886; for the one shipped since, 400 and 600 did not (one task 5.8% over
    at 600, 4.1% at 800); the 800 cost the page's maps phase 0.03 CPU s a task (docs/task-profile-now.md). A
    larger learning rate (100 or 200 instead of sklearn's 50 for 55 points) got no closer in as many steps, and
    a stop on the gradient's norm (3e-4) came after 500 to 1,400 steps on those tasks. 300 left the map of a
    student whose groups differ wholly from its teacher's partly in the teacher's layout (tests/test_report.py)."""
    return TSNE(n_components=2, perplexity=perplexity, init=np.asarray(init, dtype=np.float32), random_state=seed,
                metric="cosine", max_iter=steps, early_exaggeration=1.0)


def align(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`coords` turned, mirrored, scaled and moved to lie as close as they can to `reference` (orthogonal
    Procrustes; the same points in both, (N, 2)). The shape of the map is unchanged."""
    a, b = coords - coords.mean(axis=0), reference - reference.mean(axis=0)
    rotation, singular_sum = orthogonal_procrustes(a, b)
    return a @ rotation * (singular_sum / max(float((a ** 2).sum()), 1e-12)) + reference.mean(axis=0)


def project_aligned(series: list[np.ndarray], method: str = "t-SNE", parameter: float | None = None,
                    seed: int = 0, reference: np.ndarray | None = None) -> list[np.ndarray]:
    """Maps of the same points seen by several embeddings (a student's snapshots during fine-tuning), each
    started from the previous map (the first from `reference`, e.g. the teacher's map) and aligned to it:
    from one map to the next the points move only as much as their embeddings do."""
    maps, previous = [], reference
    for embeddings in series:
        coords = project(embeddings, method, parameter, seed, init=previous)
        coords = align(coords, previous) if previous is not None else coords
        maps.append(coords)
        previous = coords
    return maps


def warm_up(methods: tuple[str, ...]) -> None:
    """Draw a small map with each method once: UMAP's first map compiles its numba code (seconds)."""
    for method in methods:
        project(np.random.default_rng(0).normal(size=(40, 8)), method, 5)
