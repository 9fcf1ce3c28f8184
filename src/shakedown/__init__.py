"""shakedown: integration tests against real infrastructure on one machine, in seconds, with faults."""
