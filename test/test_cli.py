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


def _one_line_error(capsys, argv, code=2):
    """Run ``main(argv)``: argparse errors exit, command errors return; either way one stderr line."""
    try:
        rc = main(argv)
    except SystemExit as exit_info:
        rc = exit_info.code
    assert rc == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv,prefix,needle", [
    (["bag", "play", "{tmp}/no_bag"], "spatial_vlm bag play:", "no_bag: no such file or directory"),
    (["bag", "play", "{tmp}", "--rate", "0"], "spatial_vlm bag play:", "--rate: must be > 0, got 0"),
    (["bag", "play", "{tmp}", "--rate", "-2"], "spatial_vlm bag play:", "--rate: must be > 0, got -2"),
    (["run", "--params", "{tmp}/missing.yaml"], "spatial_vlm run:", "missing.yaml: no such file"),
    (["evaluate", "{tmp}", "--ground-truth", "{tmp}/gt.json"], "spatial_vlm evaluate:", "gt.json: no such file"),
    (["evaluate", "{tmp}/no_bag"], "spatial_vlm evaluate:", "no_bag: no such file or directory"),
    (["evaluate", "{tmp}", "--rate", "0"], "spatial_vlm evaluate:", "--rate: must be > 0"),
])
def test_bad_arguments_are_one_line(argv, prefix, needle, tmp_path, capsys):
    line = _one_line_error(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert line.startswith(prefix) and needle in line


def test_errors_raised_by_a_command_are_one_line(tmp_path, monkeypatch, capsys):
    from spatial_vlm_ros import cli

    monkeypatch.setattr(cli, "ros_import_problem", lambda: None)     # the player refuses before ROS starts
    line = _one_line_error(capsys, ["bag", "play", str(tmp_path)])
    assert line.startswith("spatial_vlm bag play: cannot open bag ")


def test_ros_commands_without_ros_hint_at_ros_env(monkeypatch, capsys):
    from spatial_vlm_ros import cli

    monkeypatch.setattr(cli, "ros_import_problem", lambda: "No module named 'rclpy'")
    line = _one_line_error(capsys, ["run"])
    assert line.startswith("spatial_vlm run: ") and "rclpy" in line
    assert "scripts/ros_env.sh" in line and "source install/setup.bash" in line


def test_spatial_vlm_is_on_the_path_of_ros_env():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "install" / "spatial_vlm_ros" / "lib" / "spatial_vlm_ros" / "spatial_vlm").exists():
        pytest.skip("the colcon install is not built (make install)")
    proc = subprocess.run([str(root / "scripts" / "ros_env.sh"), "spatial_vlm", "--help"], capture_output=True,
                          text=True, timeout=120, env={k: v for k, v in __import__("os").environ.items()
                                                       if k not in ("VIRTUAL_ENV", "SVR_ISOLATE")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: spatial_vlm")
