"""edgepipe.components.training: model-fitting components (import TensorFlow only when they run)."""
from edgepipe.components.training.train import train_autoencoder
from edgepipe.components.training.train_dqn import train_dqn
from edgepipe.components.training.train_gan import train_gan
from edgepipe.components.training.train_model import train_model

__all__ = ["train_autoencoder", "train_model", "train_gan", "train_dqn"]
