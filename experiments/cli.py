"""The command line every experiment shares: `--config NAME --workdir DIR --set KEY=VALUE ...
[--resume=force]`."""

import argparse
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
  parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default=default_config, choices=choices)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                      help="override a config field")
  parser.add_argument("--resume", choices=("auto", "force"), default="auto",
                      help="force: resume a workdir that holds another config (recorded in "
                      "resumes.jsonl)")
  return parser.parse_args(argv)
