"""The subcommands of `qaframe`, one module each, imported lazily by qaframe.cli."""
