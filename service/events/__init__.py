"""Events from the page: validation, the atomic profile update, the durable log."""
