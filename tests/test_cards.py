"""Model cards: every bundled model has one with the sections of a model card; every lossnet command in it is
lossnet's own; its rebuild ends with the run its file records; what it says of the file is the file's."""
from __future__ import annotations

import ast
import dataclasses
import re
import shlex

import pytest

from conftest import REPO
from lossnet import cards, registry
from lossnet.cli import build_parser, cmd_train, config_from_args, main
from lossnet.errors import LossnetError
from lossnet.nets import count_parameters

BUNDLED = cards.names()


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def prose(name: str) -> str:
    return cards.card_path(name).read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def shell_commands(text: str) -> list[list[str]]:
    """The commands of the sh blocks of `text` as a shell runs them: continued lines joined, `NAME=value` lines
    set, `$NAME` expanded (an unset one fails), comments dropped."""
    variables: dict[str, str] = {}

    def expand(line: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], line)
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            assignment = re.fullmatch(r"\s*([A-Za-z_]\w*)=(.*)", line)
            if assignment:
                variables[assignment.group(1)] = " ".join(shlex.split(expand(assignment.group(2))))
            elif shlex.split(line, comments=True):
                commands.append(shlex.split(expand(line), comments=True))
    return commands


def lossnet_argv(command: list[str]) -> list[str] | None:
    """The lossnet arguments of a `lossnet ...` or `torchrun ... -m lossnet ...` command; None for `python -c`."""
    if command[0] == "lossnet":
        return command[1:]
    if command[0] == "torchrun":
        at = command.index("-m")
        assert command[at + 1] == "lossnet", command
        return command[at + 2:]
    assert command[:2] == ["python", "-c"], f"not a lossnet command: {' '.join(command)}"
    return None


def parsed(parser, argv: list[str]):
    try:
        return parser.parse_args(argv)
    except SystemExit:  # the parser has printed its one error line
        pytest.fail(f"does not parse: lossnet {' '.join(argv)}")


def carved(name: str) -> tuple[str, list[int]] | None:
    """(source model, its style indices) of a model carved out of another (`fast.save_styles`), else None."""
    source = registry.bundled()[name].config.get("training", {}).get("styles_of")
    if source is None:
        return None
    model, indices = source.split(" ", 1)
    return model, ast.literal_eval(indices)


def test_every_bundled_model_has_a_card_and_the_index_lists_it():
    assert set(BUNDLED) == set(registry.bundled())
    index = (registry.MODELS_DIR / "README.md").read_text(encoding="utf-8")
    for name in BUNDLED:
        assert cards.card_path(name).is_file(), f"{name} has no card"
        assert f"[`{name}`]({name}.md)" in index, f"the models README's index lacks {name}"


@pytest.mark.parametrize("name", BUNDLED)
def test_a_card_has_the_sections_of_a_model_card_and_no_diary(name):
    text = prose(name)
    assert text.startswith(f"# {name}\n\n") and text.split("\n")[2].strip(), "a title, then what it does"
    assert re.findall(r"^## (.+)$", text, re.M) == list(cards.SECTIONS)  # the generated one is added on print
    for title in cards.SECTIONS:
        assert section(text, title).strip(), f"{name}: empty {title}"
    assert section(text, "Training procedure").count("```sh\n") == 1, "one block of commands rebuilds it"
    assert re.search(r"`python bench/|`lossnet eval-sr|`lossnet pix2pix test", section(text, "Evaluation"))
    narrative = re.search(r"\b(we|our|session|work period|was then|so far|for now)\b", text, re.I)
    assert narrative is None, f"{name}: {narrative.group(0)!r} tells the history, not the model"


@pytest.mark.parametrize("name", BUNDLED)
def test_every_command_in_a_card_is_lossnets_own(name, parser):
    text = prose(name)
    for command in shell_commands(text):
        argv = lossnet_argv(command)
        if argv is None:
            ast.parse(command[2])
        else:
            parsed(parser, argv)
    for inline in re.findall(r"`(lossnet [^`]+)`", text):  # the commands quoted in the prose
        parsed(parser, shlex.split(inline)[1:])
    for script in re.findall(r"`(?:BENCH_THREADS=\d )?python (bench/\S+\.py)", text):
        assert (REPO / script).is_file(), script


@pytest.mark.parametrize("name", BUNDLED)
def test_the_rebuild_ends_with_the_run_the_file_records(name, parser):
    """The card's last training command, parsed as lossnet parses it, gives the training record stored in the
    model file (a carved-out model: its source's card, then the carving)."""
    stored = registry.bundled()[name].config["training"]
    source = name
    if carved(name):
        source, indices = carved(name)
        [carving] = [c for c in shell_commands(section(prose(name), "Training procedure")) if c[0] == "python"]
        call = next(n for n in ast.walk(ast.parse(carving[2])) if isinstance(n, ast.Call)
                    and getattr(n.func, "attr", "") == "save_styles")
        assert [ast.literal_eval(a) for a in call.args] == [source, indices, f"{name}.safetensors"]
    runs = [parsed(parser, argv) for argv in map(lossnet_argv, shell_commands(section(prose(source),
                                                                                      "Training procedure")))
            if argv is not None]
    last = [args for args in runs if args.func is cmd_train][-1]
    assert last.output == f"{source}.safetensors"
    kind = registry.get(last.kind)
    loop = dataclasses.replace(kind.config.__dataclass_fields__["train"].default_factory(), iters=last.iters,
                               lr=last.lr, decay_from=last.decay_from, seed=last.seed)
    record = registry.training_record(config_from_args(kind.config, last, train=loop))
    for key, value in stored.items():
        if key not in ("iters", "steps", "init_from", "styles_of"):
            assert record[key] == value, f"{name}: the card's {key} is {record[key]!r}, the file's {value!r}"
    assert last.iters == stored.get("steps", stored["iters"])  # a record without steps: a finished run
    if stored.get("decay_from") is not None:  # a decaying rate: the run ended where it was meant to
        assert last.iters == stored["iters"]
    assert (getattr(last, "init_from", None) is None) == (stored.get("init_from") is None)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_generated_section_is_what_the_file_says(name):
    model = registry.bundled()[name]
    text = cards.card(name)
    assert text.startswith(prose(name).rstrip() + f"\n\n## {cards.GENERATED}\n")
    generated = section(text, cards.GENERATED)
    assert f"`lossnet/models/{name}.safetensors`" in generated
    assert f"{model.path.stat().st_size / 1e6:.1f} MB, {count_parameters(registry.load(name)):,} parameters" \
        in generated
    assert f"- **kind**: {model.kind.name}, {model.kind.description}" in generated
    assert f"- **description**: {model.description}" in generated
    for i, style in enumerate(model.config.get("styles", [])):
        assert f"{i} {style}" in generated
    training = model.config["training"]
    assert f"- **last training run**: {cards.budget(model.config)}" in generated
    assert f"iters {training['iters']}" in generated and f"seed {training['seed']}" in generated


def test_the_generated_section_of_a_known_file():
    generated = section(cards.card("x4-pixel"), cards.GENERATED)
    assert "0.8 MB, 401,859 parameters stored as fp16" in generated
    assert "- **network**: arch srnet; scale 4; channels 64; blocks 4; norm instance; residual True" in generated
    assert "- **last training run**: 3000 steps of 192 px from x4-pixel" in generated


def test_a_model_file_of_ones_own_gets_the_generated_section_and_its_description(tmp_path):
    from lossnet.nets.srnet import SRNet
    net = SRNet(2, channels=4, blocks=1)
    path = registry.save(net, tmp_path / "mine.safetensors", {**net.config(), "training": {"steps": 3, "crop": 16}})
    text = cards.card(path)
    assert text.startswith("# mine\n\nNo description is stored in this file.\n\n## Model file\n")
    registry.set_description(path, "a tiny x2 test network")
    text = cards.card(path)
    assert text.startswith("# mine\n\na tiny x2 test network\n\n## Model file\n")
    assert f"Read from `{path}`" in text and f"{count_parameters(net):,} parameters stored as fp32" in text
    assert "- **last training run**: 3 steps of 16 px" in text and "## Use" not in text
    (tmp_path / "run").mkdir()
    registry.save(net, tmp_path / "run" / registry.MODEL_FILE, net.config())
    assert cards.card(tmp_path / "run").startswith("# run\n")  # a run folder: its name


def test_an_unknown_name_is_said_with_the_closest_ones():
    with pytest.raises(LossnetError, match=r"no bundled model 'stary' \(did you mean starry.*the bundled models "
                                           r"are paintings8, "):
        cards.card("stary")
    with pytest.raises(LossnetError, match="no model file or run folder nowhere/mine.safetensors"):
        cards.card("nowhere/mine.safetensors")


def test_models_card_prints_the_card(capsys):
    assert main(["models", "--card", "x4-pixel"]) == 0
    assert capsys.readouterr().out == cards.card("x4-pixel")


@pytest.mark.parametrize("spec, error", [
    ("x4-pixle", "error: no bundled model 'x4-pixle' (did you mean x4-pixel"),
    ("nowhere/mine.safetensors", "error: no model file or run folder nowhere/mine.safetensors"),
    ("", "error: no bundled model ''"),
    (str(REPO / "lossnet" / "models" / "README.md"), "error: cannot read weights"),  # beside the models, not one
])
def test_models_card_of_a_bad_name_or_file_is_one_error_line(spec, error, capsys):
    assert main(["models", "--card", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(error) and captured.err.count("\n") == 1
