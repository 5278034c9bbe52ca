"""The simulated SDSS world: nights, calibration state, raw frames, mail archives, archive server.

Public entry points (imported lazily by callers; nothing runs at import time):

- ``arcray.sim.world.render_world(out_dir, start, nights, seed, observatory='apo', ..., fault_rate=0.04)``
- ``arcray.sim.world.SimWorld.load(root).frame_bytes(camera, expnum)``
- ``arcray.sim.frames.render_frame(camera, exposure, state, seed) -> (uint16 array, Header)``
- ``arcray.sim.frames.frame_bytes(camera, exposure, state, seed) -> bytes`` (gzip FITS)
- ``arcray.sim.frames.render_light(camera, exposure, state) -> float32 trimmed electrons`` (noiseless)
- ``arcray.sim.schedule.build_schedule`` / ``arcray.sim.state.simulate_states`` / ``CalibState``
- ``arcray.sim.truth``: ``TRUTH_SCHEMA`` and the pure scoring API (``field_of``, ``true_lines``,
  ``line_error``, ``line_errors``, ``floors``)
"""
