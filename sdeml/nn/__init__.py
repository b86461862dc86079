"""sdeml.nn: equinox networks shared by the themes (time-conditioned MLP, small U-Net)."""

from ._mlp import GaussianFourierEmbedding as GaussianFourierEmbedding
from ._mlp import TimeMLP as TimeMLP
from ._unet import UNet8 as UNet8

__all__ = [
    "GaussianFourierEmbedding",
    "TimeMLP",
    "UNet8",
]
