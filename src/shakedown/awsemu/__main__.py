"""``python -m shakedown.awsemu --port P --config JSON`` runs the emulator (slower to start than
``server_command``'s bootstrap, which skips the package's ``__init__``)."""

from ._server import main

main()
