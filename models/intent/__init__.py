"""Reply-intent planner: picks what the service's next reply should do before it is written."""
