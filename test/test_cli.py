"""The ``spatial_vlm`` entry: forwarded commands hand every option to their own parser, in order."""
import pytest

from spatial_vlm_ros.cli import FORWARDED, main


@pytest.mark.parametrize("command", sorted(FORWARDED))
def test_forwarded_commands_show_their_own_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--" in out


def test_forwarded_command_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["evaluate-vlm", "--model", str(tmp_path / "missing"), "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]


def test_unknown_options_of_other_commands_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
