"""Autoencoder models, normalisation, split, PCA baseline and the model store (pure torch)."""
