"""Seeded data with a known answer, for the tests and the benchmarks (never used by the pipeline).

- ``frames``: full-size raw sdR frames from a known electron image, bias, gain and read noise
  (``make_raw_frame``), their header (``make_header``) and on-disk bytes (``fits_bytes``,
  ``gzip_bytes``);
- ``calibrated``: a small calibrated dataset in the ``Layout.calibrated`` format whose windows are
  arc lines shifted by a known state (``write_synthetic_dataset``);
- ``world``: a calibrated world whose state follows the simulator's structure (metadata + hidden
  random walk), its truth table, and a tiny registered model (``write_world``,
  ``train_tiny_model``);
- ``latents``: latent tables and arc-like images with known shifts for the analysis tests
  (``latent_world``, ``arc_frame``).
"""
