"""``python -m vqvae_lib.demo``: build the synthetic demo set (the code is ``vqvae_lib.data.demo``)."""

if __name__ == "__main__":
    from .data.demo import main

    raise SystemExit(main())
