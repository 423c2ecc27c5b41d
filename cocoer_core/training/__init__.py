"""Training CocoER: augmentation, batches, the loss, initial weights, resumable state and the loop.

The command is `python -m cocoer_core.train` (cocoer_core/train.py).
"""
