"""qaframe's built-in plugins, registered through the `qaframe` entry-point group like anyone else's."""
