"""Chapter 01 (notebooks/01_pretraining.ipynb): pre-training under label noise."""
