"""Every subcommand's --help renders (argparse formats help lazily, so a bad help string only fails here)."""
import pytest

from lossnet.cli import build_parser, main


def subcommands(parser, prefix=()):
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            yield prefix + (name,)
            yield from subcommands(sub, prefix + (name,))


COMMANDS = list(subcommands(build_parser()))


def test_there_are_commands():
    assert ("stylize",) in COMMANDS and ("viz", "saliency") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: lossnet" in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_a_description(command):
    parser = build_parser()
    for word in command:
        parser = parser._subparsers._group_actions[0].choices[word]
    assert parser.description and len(parser.description) > 10


@pytest.mark.parametrize("args, hint", [
    (["stylize", "x.png", "--styel", "a.png", "-o", "o.png"], "did you mean --style?"),
    (["stylize", "x.png", "--content_weight", "3", "-o", "o.png"], "did you mean --content-weight?"),
    (["stylize", "x.png", "-style_image", "a.png", "-o", "o.png"], "did you mean --style?"),
    (["stylize", "x.png", "--num_iterations", "5", "-o", "o.png"], "did you mean --iters?"),
    (["stylize", "x.png", "--iter", "5", "-o", "o.png"], "did you mean --iters?"),  # no silent prefix match
    (["styliz", "x.png"], "did you mean stylize"),
    (["pix2pix", "tset"], "did you mean test?"),
])
def test_mistyped_commands_and_options_get_one_line_with_a_suggestion(args, hint, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and hint in err[0], err


def test_version_and_the_british_spelling(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("lossnet ")
    with pytest.raises(SystemExit):
        main(["stylise", "--help"])
    assert "usage: lossnet stylize" in capsys.readouterr().out  # the same command


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_option_with_a_default_shows_it(command, capsys):
    import argparse
    parser = build_parser()
    for word in command:
        parser = parser._subparsers._group_actions[0].choices[word]
    for a in parser._actions:
        if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) and a.help != argparse.SUPPRESS:
            assert "default" in (a.help or ""), (command, a.option_strings)
