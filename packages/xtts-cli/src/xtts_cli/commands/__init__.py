"""One module per command or command group; each imports torch only when it runs."""
