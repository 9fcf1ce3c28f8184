"""shakedown: integration tests against real infrastructure on one machine, with faults."""
