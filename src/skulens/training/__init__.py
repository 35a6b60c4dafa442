"""Training: :mod:`skulens.training.loop` (the one training loop every trained model uses) and
:mod:`skulens.training.finetune` (what fine-tuning adds: its configuration, checks and curves).

This package imports nothing on import, so low layers (heads) can use the loop without loading the rest.
"""
