"""The ``crm`` command line: operating the system and calling its services.

``app`` composes the commands, one module each: ``running`` (``up``,
``serve``, with ``supervisor``), ``migrate``, ``health``, ``doctor`` (with ``checks``),
``tokens`` and ``contracts_export``; ``log_ops`` acts on a service's log.
``rpc`` holds the helpers every service's own sub-commands use
(``rpc_call``, ``emit``, ``print_record``, ``print_table``), and the typer
app each installed service's ``ServiceSpec.cli`` names becomes ``crm <name> ...``.
"""
