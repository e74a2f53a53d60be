"""One training loop for every stage: AdamW, warm-up + cosine, EMA, bf16, checkpoints, resume, DDP."""
