"""arcray: calibration-frame autoencoders for the SDSS-V BOSS spectrographs."""

__version__ = "0.1.0"
RAY_VERSION = "2.60.0"
