"""vqvae_lib: the small library behind the VQ-VAE brain-MRI tutorial notebooks."""

__version__ = "0.1.0"
