"""labkit.cli: the `labkit` command line, with Microsoft Olive's flag names.

- `labkit.cli.main`    the commands (finetune, evaluate, export/auto-opt, generate-adapter, chat, run, search, doctor, prepare) and `main()`
- `labkit.cli.flags`   the flags, their value types and errors, each command's examples, `run --config` files, and what finetune reads from them
- `labkit.cli.search`  `labkit search --config`: hyperparameter search over finetune's settings
"""
