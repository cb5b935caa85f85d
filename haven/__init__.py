"""Haven: the shared core of the service (wire protocol, settings, auth, storage)."""
