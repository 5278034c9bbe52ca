"""The simulated SDSS world: nights, calibration state, raw frames, mail archives, archive server.

Public entry points (imported lazily by callers; nothing runs at import time):

- ``arcray.sim.world.render_world(out_dir, start, nights, seed, observatory='apo', ...)``
- ``arcray.sim.world.SimWorld.load(root).frame_bytes(camera, expnum)``
- ``arcray.sim.frames.render_frame(camera, exposure, state, seed) -> (uint16 array, Header)``
- ``arcray.sim.frames.frame_bytes(camera, exposure, state, seed) -> bytes`` (gzip FITS)
- ``arcray.sim.schedule.build_schedule`` / ``arcray.sim.state.simulate_states`` / ``CalibState``
"""
