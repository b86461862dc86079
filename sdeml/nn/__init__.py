"""sdeml.nn: equinox networks shared by the themes (time-conditioned MLP, small U-Net)."""

from ._mlp import GaussianFourierEmbedding, TimeMLP
from ._unet import UNet8

__all__ = ["GaussianFourierEmbedding", "TimeMLP", "UNet8"]
