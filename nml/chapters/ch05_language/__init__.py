"""Chapter 05 (notebooks/05_language_models.ipynb): NMTune on frozen text encoders."""
