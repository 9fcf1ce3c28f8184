"""shakedown.awsemu (layer L1): the AWS emulator process — moto's application served over HTTP,
wrapped in a fault layer (rules that make chosen operations fail with AWS's own error shapes
or answer late) and control endpoints under ``/_shakedown/``:
``GET health``, ``GET rules``, ``POST rules`` (one ``RuleData`` as JSON, answers ``{"id": ...}``),
``DELETE rules/ID``, ``DELETE rules``, ``POST resources`` (create the declared resources again,
after ``POST /moto-api/reset``).

Started with ``server_command`` (a fast bootstrap) or ``python -m shakedown.awsemu``. Knows
nothing of topologies or services: the ``aws`` kind drives it."""

from ._launch import server_command
from ._middleware import CONTROL
from ._rules import RuleAction, RuleData

__all__ = ["CONTROL", "RuleAction", "RuleData", "server_command"]
