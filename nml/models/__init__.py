"""Models: backbones by name, pre-trained image and text encoders, input preprocessing,
feature extraction with its cache, pre-training with its checkpoint cache."""
