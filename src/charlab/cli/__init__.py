"""cli: the ``charlab`` command; one module per subcommand in ``commands/``."""
