"""pokedemo: few-shot learning and model compression on Pokémon sprites (the library; no UI)."""
