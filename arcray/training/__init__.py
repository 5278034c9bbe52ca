"""Ray layer of training: per-worker loop, TorchTrainer driver, Tune search, figures."""
