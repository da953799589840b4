"""`scalpel`: the command line over app.client (no server, worker or torch imports)."""
