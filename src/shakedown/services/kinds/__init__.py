"""One module (or family package) per service kind. A kind imports the services' base and
protocols and its own spec, never another kind: the import contract in pyproject.toml checks
it for every module found here."""
