"""In-process stand-ins for external services (instance metadata, ...), shared by tests and fleet drills."""
