"""The Ray layer of the pipeline stages, one module each (``scrape``, ``download``, ``calibrate``,
``embed``, ``decode``, ``analysis``; ``demo`` runs them all). Each stage function returns an
``arcray.stages.StageSummary``; Ray Train / Tune live in ``arcray.training``."""
