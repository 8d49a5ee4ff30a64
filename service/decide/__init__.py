"""The decision core: transport-neutral, called by the HTTP handlers."""
