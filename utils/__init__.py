"""Plumbing shared by every paper folder: data, tokenizers, batching, init, metrics,
sampling, checkpoints and training helpers. Plain functions; nothing here is paper-specific."""
