"""The gateway's services: the release path, submissions, operator actions."""
