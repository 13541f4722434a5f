"""The subcommands of the `tensorlite` command line (tensorlite/cli.py assembles them): each module
declares its commands' arguments (`add_commands`) and prints what the library computed."""
