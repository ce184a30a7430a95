"""exportwatch_local: everything that is not deployed. The operator CLI (`exportwatch`), the Intercom emulator,
the moto stack built from template.yaml, the local Slack receiver, the demo and the samples.

`make install` puts it in `.venv` beside the runtime package `exportwatch` (layers/exportwatch/), which is all
that `sam build` ships to Lambda. Nothing in `exportwatch` imports from here.
"""
