"""Card reader backends: ``sim`` (in-process virtual card), ``pcsc`` (pyscard), ``nfcpy`` (PN532)."""
