"""The command line every experiment shares:
`--config NAME --workdir DIR [--config.FIELD=VALUE ...] [--resume=force]` (`--set FIELD=VALUE` is the same
as `--config.FIELD=VALUE`)."""

import argparse
import sys
import ast
import dataclasses


def parse_overrides(config, pairs: list[str]):
  """Applies `key=value` overrides (Python literals, else strings) to a frozen dataclass config."""
  fields = {f.name for f in dataclasses.fields(config)}
  updates = {}
  for pair in pairs:
    key, _, value = pair.partition("=")
    if key not in fields:
      raise ValueError(f"unknown config field {key!r}; expected one of {sorted(fields)}")
    try:
      updates[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      updates[key] = value
  return dataclasses.replace(config, **updates)


def parse_args(argv, description: str, default_config: str, choices=None) -> argparse.Namespace:
  """`config` (a name), `workdir`, `set` (the override pairs) and `resume` ("auto" or "force")."""
  argv = list(sys.argv[1:] if argv is None else argv)
  # `--config.FIELD=VALUE` (or `--config.FIELD VALUE`), as with ml_collections' config flags.
  pairs, rest, i = [], [], 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      field, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise SystemExit(f"{arg} needs a value")
        value, i = argv[i + 1], i + 1
      pairs.append(f"{field}={value}")
    else:
      rest.append(arg)
    i += 1
  parser = argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default=default_config, choices=choices)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                      help="override a config field (the same as --config.FIELD=VALUE)")
  parser.add_argument("--resume", choices=("auto", "force"), default="auto",
                      help="force: resume a workdir that holds another config (recorded in "
                      "resumes.jsonl)")
  args = parser.parse_args(rest)
  args.set = pairs + args.set
  return args
