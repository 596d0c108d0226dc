"""``python -m vqvae_lib.predict``: reconstructions of a few slices (the code is
``vqvae_lib.evaluate.predict``)."""

if __name__ == "__main__":
    import sys

    from .evaluate.predict import main

    sys.exit(main())
