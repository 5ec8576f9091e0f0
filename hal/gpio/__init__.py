"""Indicator backends: ``sim`` (records history) and ``gpiozero`` (RGB LED + buzzer on GPIO pins)."""
