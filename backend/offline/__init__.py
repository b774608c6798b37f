"""The offline commands: ``python -m backend mine`` (``mine``) and ``python -m backend evaluate`` (``evaluate``)."""
