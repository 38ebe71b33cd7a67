"""nml: label noise in pre-training and fine-tuning, reproduced."""
__version__ = "0.1.0"
