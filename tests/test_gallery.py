"""pokedemo.data.gallery: random tasks from the shipped gallery, every combination the page offers."""
from __future__ import annotations

import pytest

from pokedemo.config import ASSETS_DIR
from pokedemo.data.gallery import Gallery

GALLERY = Gallery(ASSETS_DIR / "gallery")


@pytest.mark.parametrize("n_way", range(2, 11))
def test_every_shots_and_queries_combination_gives_exact_counts_or_a_clear_message(n_way):
    most = max(len(items) for items in GALLERY.by_name.values())
    for n_shot in range(1, 11):
        for n_query in range(1, 11):
            for seed in range(4):
                try:
                    names, supports, queries, notes = GALLERY.random_task(seed, n_way, n_shot, n_query,
                                                                          max_queries=50)
                except ValueError as error:
                    if n_way * n_query > 50:                  # more queries than a task may have
                        assert f"{n_way * n_query} queries; a task takes at most 50" in str(error)
                        continue
                    assert n_shot + n_query > 9, (n_way, n_shot, n_query)  # 129 of 151 species hold 9 pictures
                    assert f"{n_shot + n_query} pictures" in str(error) and f"at most {most}" in str(error)
                    continue
                assert len(queries) <= 50
                assert len(names) == len(set(names)) == n_way
                assert [len(s) for s in supports] == [n_shot] * n_way and len(queries) == n_way * n_query
                for k, name in enumerate(names):
                    support, query = supports[k], queries[k * n_query:(k + 1) * n_query]
                    assert {i.name for i in support + query} == {name}
                    assert len({i.file for i in support + query}) == n_shot + n_query   # never a picture twice
                    disjoint = not {i.source for i in support} & {i.source for i in query}
                    assert disjoint or any(note.startswith(name + ":") for note in notes)


def test_the_default_task_is_source_disjoint_and_reproducible():
    first, again = GALLERY.random_task(0, 5, 5, 5), GALLERY.random_task(0, 5, 5, 5)
    assert first == again and not first[3]
    assert GALLERY.random_task(1, 5, 5, 5)[0] != first[0]


def test_queries_added_by_hand_never_repeat_a_task_picture_and_prefer_other_sources():
    import numpy as np

    pikachu = GALLERY.by_name["Pikachu"]
    supports = [i for i in pikachu if i.source in ("front", "back")]
    for seed in range(10):
        picked = GALLERY.query_images("Pikachu", 3, np.random.default_rng(seed), supports)
        assert len(picked) == 3 and not {i.file for i in picked} & {i.file for i in supports}
        assert not {i.source for i in picked} & {"front", "back"}
    everything = GALLERY.query_images("Pikachu", 50, np.random.default_rng(0), supports)
    assert len(everything) == len(pikachu) - len(supports)       # all the others, never a support
