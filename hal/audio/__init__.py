"""Speaker backends: ``sim`` (records) and ``espeak`` (espeak-ng / Open JTalk through aplay)."""
