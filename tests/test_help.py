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
