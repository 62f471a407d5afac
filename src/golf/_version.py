"""The version of golf (its own module so that checkpoint writers need not import the package root)."""
__version__ = "0.1.0"
