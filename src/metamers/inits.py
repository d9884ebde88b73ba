"""Starting images for metamer synthesis, all seeded and in [0, 1].

Noise kinds (``uniform``, ``gaussian``, ``pink``) make metamers that owe nothing to the
reference's pixels. Starts near the reference (``reference_noise``, ``blend``, ``blur``) and
other images (``same_class``, ``other_class``) take a ``strength``; near starts can make trivial
metamers, which is why every metamer records its pixel distance to its reference. A learned
start (``decoder``, :mod:`metamers.decoder`) decodes the reference's activations at the
generating layer, so its images depend on the generator and layer, not only the references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported inside each function: the config check imports these names at every
# Snakemake start, and torch's import would cost seconds of each no-op run.
NOISE_KINDS = ("uniform", "gaussian", "pink")
NEAR_KINDS = ("reference_noise", "blend", "blur", "same_class", "other_class")
LEARNED_KINDS = ("decoder",)
INIT_KINDS = NOISE_KINDS + NEAR_KINDS + LEARNED_KINDS
# A decoder's training, where its init entry does not set it (docs/generation.md): the MLP's
# (the default architecture, and the conv decoder's at layers without feature maps), the conv
# decoder's own, and the weight of the layer's activation error beside the pixels' (0: none).
DECODER_SETTINGS = {"train_images": 10000, "epochs": 5, "batch_size": 256, "lr": 0.001,
                    "hidden_units": 1024, "max_inputs": 4096}
CONV_DECODER_SETTINGS = {"channels": 64}
DECODER_KEYS = ("architecture", *DECODER_SETTINGS, *CONV_DECODER_SETTINGS, "activation_weight")


def decoder_settings(init: dict) -> dict:
    """A ``decoder`` init entry's training settings, defaults filled in. ``architecture`` and
    ``channels`` (a ``conv`` decoder) and ``activation_weight`` are named only where set, so
    the settings of an MLP decoder fitted to pixels, and the decoder files made with them, are
    those from before these could be chosen. Raises ValueError for ``channels`` without
    ``architecture: conv``."""
    settings = {key: init.get(key, default) for key, default in DECODER_SETTINGS.items()}
    if init.get("activation_weight"):
        settings["activation_weight"] = init["activation_weight"]
    if init.get("architecture", "mlp") == "conv":
        return {**settings, "architecture": "conv",
                **{key: init.get(key, default) for key, default in CONV_DECODER_SETTINGS.items()}}
    if set(init) & set(CONV_DECODER_SETTINGS):
        raise ValueError(f"{sorted(CONV_DECODER_SETTINGS)} apply to a conv decoder only: add "
                         "`architecture: conv` or remove them.")
    return settings


def pink_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """1/f noise: white noise whose spectrum is scaled by 1/|f|, rescaled per image to [0, 1]."""
    import torch

    *_, height, width = shape
    spectrum = torch.fft.rfft2(torch.randn(shape, generator=generator))
    frequency_y = torch.fft.fftfreq(height).view(-1, 1)
    frequency_x = torch.fft.rfftfreq(width).view(1, -1)
    radius = torch.sqrt(frequency_y**2 + frequency_x**2)
    radius[0, 0] = 1.0  # the mean (DC) keeps its amplitude
    noise = torch.fft.irfft2(spectrum / radius, s=(height, width))
    flat = noise.reshape(shape[0], -1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low)).reshape(shape)


def noise(kind: str, shape: tuple[int, ...], generator: torch.Generator,
          strength: float = 0.2) -> torch.Tensor:
    """Noise images of a noise kind; ``strength`` is the Gaussian's standard deviation."""
    import torch

    if kind == "uniform":
        return torch.rand(shape, generator=generator)
    if kind == "gaussian":
        return (0.5 + strength * torch.randn(shape, generator=generator)).clamp(0, 1)
    if kind == "pink":
        return pink_noise(shape, generator)
    raise ValueError(f"Unknown noise kind {kind!r}: choose one of {NOISE_KINDS}.")


def _other_images(reference_labels: torch.Tensor, pool_images: torch.Tensor,
                  pool_labels: torch.Tensor, same_class: bool, exclude: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """For each reference, a random pool image of the same (or another) class, never itself."""
    import torch

    chosen = []
    for label, excluded in zip(reference_labels.tolist(), exclude.tolist()):
        matches = (pool_labels == label) if same_class else (pool_labels != label)
        if excluded >= 0:
            matches[excluded] = False
        candidates = torch.nonzero(matches).flatten()
        if len(candidates) == 0:
            raise ValueError("No candidate image for a same_class/other_class start: the "
                             "reference pool needs two or more images per class.")
        chosen.append(candidates[torch.randint(len(candidates), (1,), generator=generator)])
    return pool_images[torch.cat(chosen)]


def initial_images(kind: str, reference_images: torch.Tensor, seed: int, strength: float = 0.5,
                   reference_labels: torch.Tensor | None = None,
                   pool_images: torch.Tensor | None = None,
                   pool_labels: torch.Tensor | None = None,
                   reference_pool_index: torch.Tensor | None = None) -> torch.Tensor:
    """Starting images (N, C, H, W) in [0, 1] for ``reference_images``.

    Strength per kind: ``gaussian``/``reference_noise``: noise standard deviation;
    ``blend``: weight alpha of the reference in alpha*reference + (1-alpha)*uniform noise;
    ``blur``: Gaussian blur sigma in pixels. ``same_class``/``other_class`` pick another image
    from ``pool_images`` (the references themselves by default).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = tuple(reference_images.shape)
    if kind in NOISE_KINDS:
        return noise(kind, shape, generator, strength)
    if kind == "reference_noise":
        return (reference_images + strength * torch.randn(shape, generator=generator)).clamp(0, 1)
    if kind == "blend":
        return strength * reference_images + (1 - strength) * torch.rand(shape, generator=generator)
    if kind == "blur":
        if strength <= 0:
            return reference_images.clone()
        kernel = 2 * int(3 * strength) + 1
        # Imported here: the config check imports this module at every Snakemake start, and
        # torchvision's transforms would add a second to each no-op run.
        from torchvision.transforms.v2.functional import gaussian_blur

        return gaussian_blur(reference_images, [kernel, kernel], [strength, strength])
    if kind in ("same_class", "other_class"):
        if reference_labels is None:
            raise ValueError(f"Init {kind!r} needs the references' labels.")
        if pool_images is None:
            pool_images, pool_labels = reference_images, reference_labels
            reference_pool_index = torch.arange(len(reference_images))
        exclude = (reference_pool_index if reference_pool_index is not None
                   else torch.full((len(reference_images),), -1))
        return _other_images(reference_labels, pool_images, pool_labels, kind == "same_class",
                             exclude, generator).clone()
    if kind in LEARNED_KINDS:
        raise ValueError(f"Init {kind!r} decodes the generator's activations: "
                         "metamers.decoder.decoded_starts makes its images.")
    raise ValueError(f"Unknown init {kind!r}: choose one of {INIT_KINDS}.")
