"""The tokenizer's training objective beyond pixels: an adversarial loss (VQGAN / MaskGIT style) and
a perceptual loss in the features of a frozen network.

Why: pixel losses (MSE + edges) make the decoder predict the conditional mean of the image given
its 49 codes, which is blurry; a feature network used to score FID sees that blur, and it set the
FID floor of every generator built on the tokenizer. The two terms here are the standard cures:

* adversarial: a small patch discriminator (`PatchDiscriminator`) tells real images from
  reconstructions with the hinge loss; the decoder gets -D(x_hat), weighted adaptively so its
  gradient at the decoder's last layer has the size of the reconstruction loss's (VQGAN's rule,
  `adaptive_weight`), times `adv_weight`. No pretrained network is involved.
* perceptual (optional): mean squared distance of unit-normalised activations of a frozen
  feature network at each stage (LPIPS without learned per-channel weights). The network must
  not be the one that scores FID, or the tokenizer would be fitted to the metric: the recipe uses
  a separately trained one (`autonat featnet train --seed 1 ...`) and reports FID in two spaces.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# Adversarial
# ----------------------------------------------------------------------------------------------

class PatchDiscriminator(nn.Module):
    """Convolutional patch discriminator: `layers` stride-2 4x4 convolutions (doubling channels from
    `channels`, capped at 8x), then two 3x3 convolutions; returns one logit per patch [B, 1, h, w].
    GroupNorm instead of BatchNorm, so a logit never depends on the other images of the batch."""

    def __init__(self, in_channels: int = 1, channels: int = 64, layers: int = 2):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers):
            c_next = channels * min(2 ** i, 8)
            mods += [nn.Conv2d(c, c_next, 4, 2, 1), nn.GroupNorm(min(32, c_next // 4), c_next), nn.LeakyReLU(0.2)]
            c = c_next
        mods += [nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(min(32, c // 4), c), nn.LeakyReLU(0.2),
                 nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] in [0, 1] -> patch logits [B, 1, h, w]."""
        return self.net(images * 2 - 1)


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))), halved (VQGAN)."""
    return 0.5 * (F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean())


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss: -mean(D(x_hat))."""
    return -fake_logits.float().mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """||d rec / d W|| / ||d adv / d W|| at the decoder's last weight W (detached, clamped): the
    adversarial term then pulls on the decoder as hard as the reconstruction term does."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()


# ----------------------------------------------------------------------------------------------
# Perceptual
# ----------------------------------------------------------------------------------------------

class PerceptualLoss(nn.Module):
    """Distance of two image batches in the stage activations of a frozen feature network (one
    with `stage_activations(images) -> list[Tensor]`, e.g. `autonat.metrics.features.FeatureNet`):
    per stage, channel vectors are unit-normalised, then the squared differences are summed over
    channels and averaged over positions and images; stages are averaged."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return self         # the network stays in eval mode (BatchNorm statistics frozen)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net.stage_activations(x)
        with torch.no_grad():
            fy = self.net.stage_activations(y)
        dists = [(F.normalize(a.float(), dim=1) - F.normalize(b.float(), dim=1)).pow(2).sum(1).mean()
                 for a, b in zip(fx, fy)]
        return torch.stack(dists).mean()
