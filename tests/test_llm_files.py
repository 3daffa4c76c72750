"""Loading SAEs, features files and steering policies: round trips and clear errors."""

from __future__ import annotations

import json

import pytest

from bots.llm.policy import FixedSteeringPolicy, PolicyError, load_policy, register_policy_kind, POLICY_KINDS
from bots.llm.sae import SAELoadError, check_compatible, load_feature_info, load_sae
from bots.llm.testing import tiny_language_model, tiny_sae
from server.game import Board


@pytest.fixture()
def sae_dir(lm, tmp_path):
    tiny_sae(lm, folder=tmp_path / "sae")
    return tmp_path / "sae"


# ---------------------------------------------------------------------------- SAE folders
def test_sae_round_trip_in_sae_lens_format(lm, sae_dir):
    sae = load_sae(sae_dir)
    assert (sae.hook_name, sae.d_in, sae.d_sae, sae.architecture) == ("blocks.1.hook_resid_pre", 32, 64, "standard")
    assert sae.label(3) == "cell 5 occupied by me" and sae.label(4) is None
    assert sae.features.typical_activation[1] == 0.75
    check_compatible(sae, lm)
    # a folder that holds exactly one SAE folder is accepted too
    assert load_sae(sae_dir.parent).source == str(sae_dir)


def test_missing_and_malformed_sae_files(sae_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SAELoadError, match="not an SAE folder"):
        load_sae(empty)
    (sae_dir / "cfg.json").write_text("{not json")
    with pytest.raises(SAELoadError, match=r"cfg\.json is not valid JSON"):
        load_sae(sae_dir)
    (sae_dir / "cfg.json").write_text(json.dumps({"d_in": 32, "d_sae": "many", "metadata": {"hook_name": "x"}}))
    with pytest.raises(SAELoadError, match="'d_sae' must be a positive integer"):
        load_sae(sae_dir)
    (sae_dir / "cfg.json").write_text(json.dumps({"d_in": 32, "d_sae": 64}))
    with pytest.raises(SAELoadError, match="names no hook point"):
        load_sae(sae_dir)


def test_corrupt_weights_file(lm, sae_dir):
    (sae_dir / "sae_weights.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SAELoadError, match=r"cannot load the SAE in .*sae"):
        load_sae(sae_dir)


def test_missing_weights_file(sae_dir):
    (sae_dir / "sae_weights.safetensors").unlink()
    with pytest.raises(SAELoadError, match="has no sae_weights.safetensors"):
        load_sae(sae_dir)


def test_sae_file_instead_of_folder(sae_dir):
    with pytest.raises(SAELoadError, match="is a file"):
        load_sae(sae_dir / "cfg.json")


def test_unknown_registry_entry():
    with pytest.raises(SAELoadError, match="not a sae_lens registry release"):
        load_sae("no-such-release/blocks.0.hook_resid_pre")
    with pytest.raises(SAELoadError, match="neither a folder nor a registry"):
        load_sae("nothing-here")
    with pytest.raises(SAELoadError, match="has no SAE"):
        load_sae("gpt2-small-res-jb/blocks.99.hook_nothing")


def test_hook_the_model_lacks_and_width_mismatch(lm, tmp_path):
    odd = tiny_sae(lm, hook_name="blocks.7.hook_resid_pre", folder=tmp_path / "a")
    with pytest.raises(SAELoadError, match="blocks.7.hook_resid_pre.*does not have"):
        check_compatible(odd, lm)
    wide = tiny_language_model(d_model=48)
    sae = tiny_sae(lm, folder=tmp_path / "b")
    with pytest.raises(SAELoadError, match="d_in=32.*d_model=48"):
        check_compatible(sae, wide)


def test_features_file_checks(sae_dir):
    path = sae_dir / "features.json"
    good = json.loads(path.read_text())
    with pytest.raises(SAELoadError, match="at 'blocks.1.hook_resid_pre'"):
        load_feature_info(path, hook_name="blocks.0.hook_resid_pre", d_sae=64)
    for bad, message in [
        ({**good, "d_sae": 10}, "describes 10 features"),
        ({**good, "typical_activation": [1.0] * 3}, "list of 64 numbers"),
        ({**good, "typical_activation": [-1.0] * 64}, "non-negative"),
        ({**good, "labels": {"abc": "x"}}, "not a feature index"),
        ({**good, "labels": {"64": "x"}}, "outside 0..63"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(SAELoadError, match=message):
            load_feature_info(path, hook_name="blocks.1.hook_resid_pre", d_sae=64)
    path.write_text("[")
    with pytest.raises(SAELoadError, match="features.json is not valid JSON"):
        load_sae(sae_dir)


# ---------------------------------------------------------------------------- policies
def test_fixed_policy_round_trip(tmp_path):
    p = FixedSteeringPolicy([4, 9], [0.25, -1.0], hook_name="blocks.1.hook_resid_pre", d_sae=64)
    p.save(tmp_path / "p.json")
    q = load_policy(tmp_path / "p.json", d_sae=64, hook_name="blocks.1.hook_resid_pre")
    assert q.features == (4, 9) and q.coefficients([Board.empty(), Board.from_moves([5])]) == [[0.25, -1.0]] * 2
    assert q.digest == p.digest
    assert FixedSteeringPolicy([4, 9], [0.25, -0.5]).digest != FixedSteeringPolicy([4, 9], [0.25, -1.0]).digest
    # kind defaults to fixed
    (tmp_path / "plain.json").write_text(json.dumps({"features": [1], "coefficients": [0.5]}))
    assert load_policy(tmp_path / "plain.json").kind == "fixed"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        (json.dumps({"kind": "neural", "features": [1]}), "unknown policy kind 'neural'"),
        (json.dumps({"features": [], "coefficients": []}), "non-empty list"),
        (json.dumps({"features": [1, 2], "coefficients": [0.5]}), "2 features but 1 coefficients"),
        (json.dumps({"features": [1, 1], "coefficients": [0.5, 0.5]}), "repeat"),
        (json.dumps({"features": [-3], "coefficients": [0.5]}), "negative"),
        (json.dumps({"features": [1.5], "coefficients": [0.5]}), "not an integer"),
        (json.dumps({"features": [1], "coefficients": ["big"]}), "not a finite number"),
        (json.dumps({"features": [1], "coefficients": 0.5}), "must be a list"),
        (json.dumps({"features": [1], "coefficients": [0.5], "d_sae": 0}), "'d_sae' must be a positive integer"),
    ],
)
def test_malformed_policy_files(tmp_path, content, message):
    path = tmp_path / "policy.json"
    path.write_text(content)
    with pytest.raises(PolicyError, match=message) as err:
        load_policy(path)
    assert "policy.json" in str(err.value)


def test_policy_against_the_sae(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"features": [70], "coefficients": [0.5]}))
    with pytest.raises(PolicyError, match="feature index 70 is out of range.*0..63"):
        load_policy(path, d_sae=64)
    path.write_text(json.dumps({"features": [1], "coefficients": [0.5], "hook_name": "blocks.3.hook_resid_pre"}))
    with pytest.raises(PolicyError, match="made for an SAE at 'blocks.3.hook_resid_pre'"):
        load_policy(path, d_sae=64, hook_name="blocks.1.hook_resid_pre")
    path.write_text(json.dumps({"features": [1], "coefficients": [0.5], "d_sae": 128}))
    with pytest.raises(PolicyError, match="128 features"):
        load_policy(path, d_sae=64)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.json")
    with pytest.raises(PolicyError, match="is a folder"):
        load_policy(tmp_path)


def test_register_policy_kind(tmp_path):
    class CentreFirst(FixedSteeringPolicy):
        kind = "centre-first"

        def coefficients(self, boards):
            return [[1.0 if b[5] is None else 0.0] for b in boards]

    register_policy_kind("centre-first", lambda data, source: CentreFirst(data["features"], [0.0], source=source))
    try:
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"kind": "centre-first", "features": [2]}))
        p = load_policy(path)
        assert p.coefficients([Board.empty(), Board.from_moves([5])]) == [[1.0], [0.0]]
    finally:
        POLICY_KINDS.pop("centre-first")


def test_missing_sae_folder_named_as_such(tmp_path):
    with pytest.raises(SAELoadError, match="SAE folder .*nowhere does not exist"):
        load_sae(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------------------- command lines
def test_cli_modules_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, argparse; import bots.llm.cli as c, training.evaluation.evaluate as e, bots.llm.policy, bots.llm.readers; "
        "p = argparse.ArgumentParser(); c.add_arguments(p); e.add_arguments(argparse.ArgumentParser()); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_bad_policy_is_a_clear_error_before_loading_the_model(tmp_path):
    import argparse

    from bots.llm import cli

    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"features": [1, 2], "coefficients": [1.0]}))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--policy", str(bad)])
    with pytest.raises(PolicyError, match="p.json: 2 features but 1 coefficients"):
        cli.build_bot(args)
    args = parser.parse_args(["--top-k", "100"])
    with pytest.raises(ValueError, match="--top-k"):
        cli.build_bot(args)


def test_evaluate_rejects_bad_arguments(capsys):
    from training.cli import main

    assert main(["evaluate", "--games", "0"]) == 2
    assert "--games must be at least 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", "--opponent", "grandmaster"])
    assert "unknown opponent 'grandmaster'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- fixes after the audit
@pytest.mark.parametrize("spec", ["/nonexistent", "./no/such/model", "~/no-such-model-folder", "a/b/c"])
def test_model_path_that_does_not_exist_says_no_such_folder(spec):
    from bots.llm.model import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match="no such folder") as info:
        load_model(spec, verbose=False)
    assert "repo" not in str(info.value).lower()  # not Hugging Face's repo-id message


def test_model_path_that_is_a_file(tmp_path):
    from bots.llm.model import ModelLoadError, load_model

    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match="that is a file"):
        load_model(str(f), verbose=False)
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), verbose=False)


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """An empty stand-in for bots/llm/artifacts."""
    import bots.llm.sae as sae_mod

    folder = tmp_path / "artifacts"
    folder.mkdir()
    monkeypatch.setattr(sae_mod, "ARTIFACTS_DIR", folder)
    return folder


def test_policy_auto_uses_the_shipped_policy_or_none(artifacts):
    import argparse

    from bots.llm import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args([]).policy == "auto"  # the default of autosteer-bot run --kind llm
    policy, note = cli.load_policy_arg("auto")
    assert policy is None and "no policy shipped" in note
    FixedSteeringPolicy([1, 4], [0.5, -0.5]).save(artifacts / "policy.json")
    policy, note = cli.load_policy_arg("auto")
    assert policy is not None and policy.features == (1, 4)
    assert policy.digest in note and "shipped" in note
    assert cli.load_policy_arg("none") == (None, "no steering (--policy none)")
    (artifacts / "policy.json").write_text("{not json")
    with pytest.raises(PolicyError, match="policy.json is not valid JSON"):
        cli.load_policy_arg("auto")


def test_build_bot_with_policy_auto_logs_and_traces_the_choice(artifacts, monkeypatch, capsys):
    import argparse

    import bots.llm.model as model_mod
    from bots.llm import cli
    from bots.llm.testing import tiny_language_model, tiny_sae

    lm = tiny_language_model()
    monkeypatch.setattr(model_mod, "load_model", lambda *a, **k: lm)
    tiny_sae(lm, folder=artifacts / "sae")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    board = Board.from_moves([5])

    bot = cli.build_bot(parser.parse_args([]))  # SAE shipped, no policy shipped: unsteered
    assert bot.policy is None and bot.play([board])[0].trace["policy"] == "none"
    assert "steering: no steering (--policy auto: no policy shipped" in capsys.readouterr().out

    shipped = FixedSteeringPolicy([2, 3], [0.5, -0.5])
    shipped.save(artifacts / "policy.json")
    bot = cli.build_bot(parser.parse_args([]))
    assert bot.policy is not None and bot.policy.digest == shipped.digest
    assert bot.play([board])[0].trace["policy"] == shipped.digest
    assert (
        f"steering: shipped fixed policy {artifacts / 'policy.json'} (digest {shipped.digest}"
        in capsys.readouterr().out
    )

    bot = cli.build_bot(parser.parse_args(["--sae", "none"]))  # shipped policy, but no SAE: unsteered, said so
    assert bot.policy is None
    assert "--sae none was given" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs the SAE"):  # an explicit policy without SAE is an error
        cli.build_bot(parser.parse_args(["--sae", "none", "--policy", str(artifacts / "policy.json")]))


def test_evaluate_json_folder_checks(tmp_path, capsys):
    from training.cli import main
    from training.evaluation.evaluate import prepare_json_out

    assert prepare_json_out(str(tmp_path / "out.json")) == tmp_path / "out.json"
    made = prepare_json_out(str(tmp_path / "new" / "out.json"))  # one missing level: created
    assert made.parent.is_dir()
    with pytest.raises(ValueError, match="does not exist, nor does"):
        prepare_json_out(str(tmp_path / "a" / "b" / "out.json"))
    assert not (tmp_path / "a").exists()  # no deep tree made
    with pytest.raises(ValueError, match="that is a folder"):
        prepare_json_out(str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        prepare_json_out(str(tmp_path / "file" / "out.json"))
    # checked before the model is loaded or any game is played
    assert main(["evaluate", "--games", "1", "--json", str(tmp_path / "x" / "y" / "r.json")]) == 2
    assert "does not exist, nor does" in capsys.readouterr().out
