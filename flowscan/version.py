"""The version the reports carry, in a module of its own so every stage can name it without
importing the package (which imports the API, the top of the pipeline)."""

__version__ = "0.1.0"
