"""Both shipped models' embeddings of every gallery picture, computed once into
assets/gallery-embeddings.safetensors (named by the checkpoints' SHA-256), so the app starts with them
instead of computing them while its first visitors wait. Run it again after training new checkpoints: the
app computes them itself (in the background, at start-up) when the file is missing or made for other
checkpoints, and a test fails until it is remade.

    python scripts/embed_gallery.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pokedemo.checkpoint import checkpoint_identity, load_checkpoint  # noqa: E402
from pokedemo.config import ASSETS_DIR, GALLERY_EMBEDDINGS, SHIPPED_CHECKPOINTS  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from pokedemo.task import EmbeddingCache, Models, embed_known_pictures  # noqa: E402


def main() -> int:
    started = time.perf_counter()
    (teacher, teacher_card), (student, student_card) = [load_checkpoint(path) for path in SHIPPED_CHECKPOINTS]
    models = Models(teacher, teacher_card, student, student_card, EmbeddingCache())
    gallery = Gallery(ASSETS_DIR / "gallery")
    embed_known_pictures(models, [gallery.path(item.file) for item in gallery.items])
    models.cache.save(GALLERY_EMBEDDINGS, checkpoint_identity(*SHIPPED_CHECKPOINTS))
    print(f"{len(models.cache)} distinct pictures of {len(gallery.items)} gallery items -> {GALLERY_EMBEDDINGS} "
          f"({GALLERY_EMBEDDINGS.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
