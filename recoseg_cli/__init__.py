"""recoseg: brain tumour segmentation with residual-guided cross-modal diffusion."""

__version__ = "0.1.0"
