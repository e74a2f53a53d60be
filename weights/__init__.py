"""The bundled weights as package data: ``recoseg_accurate.pt``, ``recoseg_ddpm.pt``, ``recoseg_fast.pt`` and
``recoseg_hires.pt`` (``weights.BUNDLED_MODELS``), their ``SHA256SUMS`` and ``MODEL_CARD.md``.

This folder installs as ``recoseg_cli.bundled_weights`` (see ``pyproject.toml``), so a wheel or a plain
``pip install .`` carries the model.
"""
