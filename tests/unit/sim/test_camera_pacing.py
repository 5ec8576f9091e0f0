"""SimCamera's opt-in real-time pacing (benchmarks): frame i of a presentation not before i / fps."""

import time

import numpy as np

from hal.camera.sim import SimCamera


def test_no_pacing_by_default():
    camera = SimCamera()
    assert camera.realtime is False
    started = time.monotonic()
    for _ in range(30):
        camera.capture()
    assert time.monotonic() - started < 0.5


def test_realtime_serves_frames_at_the_frame_rate():
    camera = SimCamera(realtime=True)
    camera.fps = 100.0
    times = []
    for _ in range(11):
        camera.capture()
        times.append(time.monotonic())
    assert times[-1] - times[0] >= 0.1 - 0.002, "frame 10 comes 10 frame periods after frame 0"
    assert camera.time_s == 10 / 100.0 and camera.frames_served == 11


def test_a_late_consumer_gets_the_due_frames_at_once_and_a_new_presentation_restarts_the_clock():
    camera = SimCamera(realtime=True)
    camera.show(np.zeros((4, 4, 3), np.uint8))
    camera.fps = 10.0
    camera.capture()
    time.sleep(0.5)  # the consumer was busy for five frame periods
    started = time.monotonic()
    for _ in range(4):
        camera.capture()  # frames 1-4 were due already (paced from now they would take 0.4 s)
    assert time.monotonic() - started < 0.25
    camera.show(np.ones((4, 4, 3), np.uint8))
    started = time.monotonic()
    camera.capture()  # frame 0 of the new presentation: at once
    assert time.monotonic() - started < 0.08
    camera.capture()
    assert time.monotonic() - started >= 0.1 - 0.002
