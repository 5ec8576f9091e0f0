"""The work a check-in's states start, each run on a worker thread by :mod:`firmware.visit`.

Each step is plain code over the card layer, the cameras and the face models: it returns a result
or raises a typed error, and never touches the flow; the caller posts the outcome as an event.
"""
