"""The experiments' shared command line: `--config.FIELD=VALUE` overrides and `--resume`."""

import pytest

from experiments import cli
from experiments.anomaly.configs import get_config


def test_config_field_overrides_and_resume():
  args = cli.parse_args(["--config", "tiny", "--workdir", "w", "--config.epochs=3", "--config.classes",
                         "(1, 2)", "--set", "batch_size=8", "--resume=force"], "", "tiny")
  assert (args.config, args.workdir, args.resume) == ("tiny", "w", "force")
  config = cli.parse_overrides(get_config(args.config), args.set)
  assert (config.epochs, config.classes, config.batch_size) == (3, (1, 2), 8)
  assert cli.parse_args(["--workdir", "w"], "", "tiny").resume == "auto"
  pairs = cli.parse_args(["--workdir", "w", "--config.epochz=1"], "", "tiny").set
  with pytest.raises(ValueError, match="unknown config field"):
    cli.parse_overrides(get_config("tiny"), pairs)
