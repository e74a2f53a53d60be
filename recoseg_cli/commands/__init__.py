"""Implementations of the CLI subcommands that run the method on patients."""
