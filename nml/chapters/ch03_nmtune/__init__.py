"""Chapter 03 (notebooks/03_nmtune.ipynb): NMTune, black-box tuning on frozen features."""
