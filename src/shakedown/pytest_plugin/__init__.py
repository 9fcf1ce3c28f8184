"""pytest plugin: environments as fixtures (built in the pytest issue)."""
