"""One module per subcommand; ``cli.py`` discovers them. See ``cli.py`` for the module contract."""
