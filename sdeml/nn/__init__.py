"""sdeml.nn: equinox networks shared by the themes (time-conditioned MLP, small U-Net) and the
affine maps they are built from (thin products written out elementwise)."""

from ._dense import affine as affine
from ._dense import linear as linear
from ._dense import mlp as mlp
from ._mlp import GaussianFourierEmbedding as GaussianFourierEmbedding
from ._mlp import TimeMLP as TimeMLP
from ._unet import UNet8 as UNet8

__all__ = [
    "GaussianFourierEmbedding",
    "TimeMLP",
    "UNet8",
    "affine",
    "linear",
    "mlp",
]
