"""The optimizer step: stepping with accumulation and clipping, mixed precision, non-finite checks."""
