"""The bundled weights as package data: ``recoseg_accurate.pt``, ``recoseg_ddpm.pt``, ``recoseg_fast.pt``,
``recoseg_hires.pt`` and ``recoseg_any_subset.pt`` (``weights.BUNDLED_MODELS``), the ONNX export of those whose
stage 1 is the L1 regressor (``NAME.onnx``, ``NAME.stage1.onnx``: ``onnx_networks``), their ``SHA256SUMS`` and
``MODEL_CARD.md``.

This folder installs as ``recoseg_cli.bundled_weights`` (see ``pyproject.toml``), so a wheel or a plain
``pip install .`` carries the model.
"""
