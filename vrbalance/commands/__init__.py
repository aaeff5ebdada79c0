"""One module per ``vrbalance`` subcommand; see :mod:`vrbalance.cli`."""
