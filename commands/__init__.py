"""The commands on top of citywatch: the CLI, the demo and the runtimes that start an edge and a server."""
