"""Sprites: obtaining the package, the prepared dataset, species splits, episodes, the gallery."""
from .dataset import EpisodeSampler, SpriteDataset, dataset_paths, species_table, split_species

__all__ = ["EpisodeSampler", "SpriteDataset", "dataset_paths", "species_table", "split_species"]
