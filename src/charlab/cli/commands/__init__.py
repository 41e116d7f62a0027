"""One module per subcommand; ``cli/main.py`` discovers them. See ``cli/main.py`` for the module contract."""
