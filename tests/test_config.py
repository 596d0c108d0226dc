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


def test_architecture_and_run_settings_are_disjoint_and_complete():
    from vqvae_lib.config import MODEL_FIELDS, PRIOR_FIELDS

    cfg = get_config("cpu")
    arch, prior, run = cfg.architecture(), cfg.prior_architecture(), cfg.run_settings()
    assert set(arch) == set(MODEL_FIELDS) and set(prior) == set(PRIOR_FIELDS)
    assert not (set(arch) & set(run)) and not (set(prior) & set(run))
    assert set(arch) | set(prior) | set(run) == set(cfg.to_dict())
    assert "lr" in run and "hidden_channels" in arch and "prior_layers" in prior


def test_loading_never_takes_architecture_from_the_current_preset(tmp_path, monkeypatch):
    import pytest

    from vqvae_lib import config as C
    from vqvae_lib.checkpoint import load_model, save_checkpoint
    from vqvae_lib.model import build_model

    cfg = get_config("smoke")
    path = save_checkpoint(tmp_path / "best.pt", model=build_model(cfg), cfg=cfg)
    # the preset is redefined after training: the checkpoint still rebuilds its own network
    monkeypatch.setitem(C.PRESETS, "smoke", {**C.PRESETS["smoke"], "hidden_channels": 24})
    model, loaded, _ = load_model(path)
    assert loaded.hidden_channels == 16 and model.encoder[0].out_channels == 16
    with pytest.raises(ValueError, match="hidden_channels"):
        C.Config.for_checkpoint(cfg.to_dict(), hidden_channels=24)
    assert C.Config.for_checkpoint(cfg.to_dict(), max_eval_images=7).max_eval_images == 7
