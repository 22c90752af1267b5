"""The trainer behind ``tools/train.py``: hyperparameters, run folders, EMA, optimizer, results, DDP, the loop."""
