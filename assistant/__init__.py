"""The store associates' assistant: CLI, server, sessions, pipeline wiring, inventory and answers."""
