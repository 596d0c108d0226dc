import pytest

from vqvae_lib.config import PRESETS, Config, get_config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_round_trip(name):
    cfg = get_config(name)
    assert cfg.preset == name
    assert cfg.image_size % cfg.downsample == 0
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_overrides_are_typed_from_strings():
    cfg = get_config("cpu", epochs="3", lr="5e-4", kmeans_init="false")
    assert (cfg.epochs, cfg.lr, cfg.kmeans_init) == (3, 5e-4, False)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="Unknown preset"):
        get_config("huge")
    with pytest.raises(ValueError, match="Unknown config field"):
        get_config("cpu", learning_rate=1.0)
    with pytest.raises(ValueError, match="Unknown config field"):
        Config.from_dict({"nonsense": 1})


def test_reference_preset_is_the_published_recipe():
    ref = get_config("reference")
    assert (ref.image_size, ref.hidden_channels, ref.codebook_size, ref.downsample) == (256, 256, 512, 4)
    assert ref.latent_size == 64
    assert (ref.quantizer, ref.beta, ref.lr, ref.amsgrad, ref.batch_size) == ("loss", 1.0, 1e-3, True, 32)
    assert (ref.scheduler, ref.step_size, ref.gamma, ref.out_activation) == ("step", 10, 0.9, "tanh")
