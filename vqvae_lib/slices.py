"""``python -m vqvae_lib.slices SRC OUT``: MRI volumes -> the course's PNG slice layout (the code
is ``vqvae_lib.data.convert``)."""

if __name__ == "__main__":
    import sys

    from .data.convert import main

    sys.exit(main())
