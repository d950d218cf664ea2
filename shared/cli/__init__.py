"""The ``crm`` command line: operating the system and calling its services.

``app`` composes the commands: ``ops`` holds the operating ones (``up``,
``serve``, ``health``, ``doctor``, ``token``, ``contracts``), ``rpc`` the
helpers every service's own sub-commands use (``rpc_call``, ``emit``,
``print_record``, ``print_table``), and each ``services.<name>.cli`` module
that defines a typer ``app`` becomes ``crm <name> ...``.
"""
