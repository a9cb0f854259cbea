"""The status page and /api/status: reads the daemon's state (as plain data) and backups
through disk/, renders with a template engine. Started by the daemon; imports no daemon code."""
