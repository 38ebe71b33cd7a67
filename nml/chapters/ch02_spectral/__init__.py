"""Chapter 02 (notebooks/02_spectral_analysis.ipynb): the feature spectrum of noisy pre-training."""
