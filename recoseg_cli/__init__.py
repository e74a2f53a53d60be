"""recoseg: brain tumour segmentation with residual-guided cross-modal diffusion.

    import recoseg_cli
    mask = recoseg_cli.segment("patient_dir/")            # a nibabel image in the patient's own grid
    segmenter = recoseg_cli.Segmenter(device="cpu")       # weights loaded once, then one call per patient
    result = segmenter("other_patient/", probabilities=True)
    synthetic = recoseg_cli.synthesize("patient_dir/")     # stage 1 alone: the synthetic T1ce
    residual = recoseg_cli.residual("patient_dir/")        # |T1ce - synthetic T1ce|
"""

__version__ = "0.1.0"

API = ("Segmenter", "SegmentationResult", "segment", "synthesize", "residual")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    """Load the API on first use, so that ``recoseg --help`` and typos stay fast."""
    if name in API:
        from recoseg_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'recoseg_cli' has no attribute {name!r}")
