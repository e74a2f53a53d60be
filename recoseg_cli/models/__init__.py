"""Networks: the shared 2D U-Net (denoiser and segmenter)."""
