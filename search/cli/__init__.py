"""The command line below cli.py: option types and parsing, output, progress, one module per
command group."""
