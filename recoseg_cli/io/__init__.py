"""Patient discovery and NIfTI input/output with exact geometry."""
