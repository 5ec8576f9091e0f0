"""Camera backends: ``sim``, ``replay:<folder or video>``, ``opencv:<index or file>``, ``picamera2:<n>``."""
