"""Chapter 04 (notebooks/04_turn.ipynb): TURN and the noisy-label baselines."""
