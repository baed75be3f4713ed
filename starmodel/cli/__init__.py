"""The ``starmodel`` command line."""
