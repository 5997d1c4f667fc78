"""The ``dmd3c`` command: one entry point whose sub-commands live in each room's ``cli``."""
