"""Options dataclasses as flags and YAML keys; selected plugins' options; clear errors for mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omni import hookimpl
from omni.cli.invocation import parse_invocation
from omni.cli.main import main
from omni.errors import MissingCapabilityError, OmniError
from omni.options import option
from omni.registry import CommandSpec, Selector, TunerSpec


@dataclass
class TrainLikeOptions:
    tuner: str = option("plain", help="which tuner", aliases=("train_type",))
    learning_rate: float = option(1e-4, help="peak learning rate")
    num_train_epochs: int = option(1, help="epochs")
    packing: bool = option(False, help="pack rows")
    dataset: list[str] = option(default_factory=list, help="datasets")
    seed: int | None = option(None, help="seed")


@dataclass
class FancyOptions:
    fancy_rank: int = option(8, help="rank of the fancy tuner")


@dataclass
class PlainOptions:
    plain_scale: float = option(1.0, help="scale of the plain tuner")


class ExamplePlugin:
    @hookimpl
    def register_commands(self, register):
        register(
            CommandSpec(
                name="train-like",
                description="a command that selects a tuner",
                impl="json:dumps",
                options=TrainLikeOptions,
                selects=(Selector("tuner", "tuners"),),
            )
        )

    @hookimpl
    def register_tuners(self, register):
        register(TunerSpec(name="fancy", description="fancy", impl="json:dumps", options=FancyOptions))
        register(TunerSpec(name="plain", description="plain", impl="json:dumps", options=PlainOptions))


@pytest.fixture
def registry(register_plugin, omni_host):
    register_plugin(ExamplePlugin(), name="example", distribution="omni-plugin-example")
    return omni_host.registry


def parse(registry, *argv):
    return parse_invocation(registry.get("commands", "train-like").spec, list(argv), registry)


def test_kebab_and_snake_spellings_parse_the_same(registry):
    kebab = parse(registry, "--learning-rate", "3e-4", "--num-train-epochs", "2", "--packing", "--dataset", "a", "b")
    snake = parse(
        registry, "--learning_rate", "3e-4", "--num_train_epochs", "2", "--packing", "true", "--dataset", "a", "b"
    )
    assert kebab.options == snake.options
    assert kebab.options == TrainLikeOptions("plain", 3e-4, 2, True, ["a", "b"], None)


def test_alias_selects_the_tuner_and_its_options_parse(registry):
    inv = parse(registry, "--train_type", "fancy", "--fancy_rank", "16")
    assert inv.options.tuner == "fancy"
    (chosen,) = inv.selected["tuner"]
    assert chosen.spec.name == "fancy" and chosen.options == FancyOptions(16)
    assert chosen.registration.distribution.name == "omni-plugin-example"


def test_options_of_an_unselected_tuner_are_rejected(registry):
    with pytest.raises(OmniError, match="unrecognized arguments: --fancy-rank"):
        parse(registry, "--fancy-rank", "16")


def test_config_file_either_spelling_and_flags_override(registry, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning-rate: 0.01\nnum_train_epochs: 3\ntrain_type: fancy\nfancy-rank: 4\nseed: 7\n")
    inv = parse(registry, "--config", str(config), "--num-train-epochs", "5")
    assert (inv.options.learning_rate, inv.options.num_train_epochs, inv.options.seed) == (0.01, 5, 7)
    assert inv.selected["tuner"][0].options == FancyOptions(4)


def test_config_mistakes_name_the_file_and_key(registry, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("learning_rat: 0.1\n")
    with pytest.raises(OmniError, match=r"typo.yaml: unknown option 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        parse(registry, "--config", str(typo))
    wrong_type = tmp_path / "type.yaml"
    wrong_type.write_text("num_train_epochs: lots\n")
    with pytest.raises(OmniError, match="type.yaml: num_train_epochs must be int, got 'lots'"):
        parse(registry, "--config", str(wrong_type))
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    with pytest.raises(OmniError, match="broken.yaml:2: not valid YAML"):
        parse(registry, "--config", str(broken))


def test_bad_flag_values_are_user_errors(registry):
    with pytest.raises(OmniError, match="--num-train-epochs: num_train_epochs must be int, got 'x'"):
        parse(registry, "--num-train-epochs", "x")
    with pytest.raises(OmniError, match="packing must be bool"):
        parse(registry, "--packing", "maybe")


def test_missing_tuner_says_which_distribution_provides_it(registry):
    with pytest.raises(MissingCapabilityError) as err:
        parse(registry, "--tuner", "lora")
    message = str(err.value)
    assert message.startswith("tuner 'lora' is not installed: pip install omni-plugin-lora (installed tuners: ")
    installed = message.split("installed tuners: ")[1].rstrip(")").split(", ")
    assert {"fancy", "plain"} <= set(installed) and "lora" not in installed


def test_help_shows_the_selected_tuners_options(registry, capsys):
    assert main(["train-like", "--tuner", "fancy", "--help"]) == 0
    out = capsys.readouterr().out
    assert "tuner 'fancy' options (omni-plugin-example)" in out and "--fancy-rank" in out
    assert "--plain-scale" not in out and "--learning_rate" not in out  # snake spellings stay hidden


def test_user_error_is_one_line_and_debug_shows_traceback(registry, capsys):
    assert main(["train-like", "--tuner", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("omni: error: tuner 'nope' is not installed") and "Traceback" not in err
    assert main(["--debug", "train-like", "--tuner", "nope"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("where", [1, 2, 3], ids=["after-command", "between-options", "last"])
def test_debug_is_global_wherever_it_stands(registry, capsys, where):
    argv = ["train-like", "--tuner", "nope"]
    assert main([*argv[:where], "--debug", *argv[where:]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "unrecognized arguments" not in err


@pytest.mark.parametrize("argv", [["--version"], ["train-like", "--version"]], ids=["before", "after-command"])
def test_version_flag(capsys, argv):
    from omni import __version__

    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"omni {__version__}"
