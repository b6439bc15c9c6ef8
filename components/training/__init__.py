"""edgepipe.components.training: the model-fitting component (imports TensorFlow only when it runs)."""
from edgepipe.components.training.train import train_autoencoder

__all__ = ["train_autoencoder"]
