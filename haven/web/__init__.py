"""The web client's files (HTML, CSS, ES modules), served as they are by `deployments.web`."""
